"""Building a bank: neighbourhoods of the retrieval index, one LoRA adapter fitted on each, written so that a killed
build resumes and shards share the work.

Every neighbourhood is fitted with the run's :class:`~adir_exp.adaptation.fit.LoRAFit` (the settings ADIR-KNN
adapts with) on a copy of the prior, on its member images; a neighbourhood larger than a fit can use
(iterations × batch size crops) is fitted on a seeded random subset of that many members, each crop then from
another image. A finished neighbourhood is its adapter directory (written under a temporary name, then renamed)
and then its record in ``done/``: a rerun skips it. The k-means is seeded, so every shard computes the same
neighbourhoods; the first writes them, the others check theirs against them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from adir_exp.adaptation.artifacts import AdapterMetadata, save_adapter
from adir_exp.adaptation.sources import AdaptationSet, pil_to_tensor
from adir_exp.bank.neighbourhoods import Neighbourhoods, partition
from adir_exp.bank.store import (
    ADAPTERS,
    CENTROIDS,
    DONE,
    FORMAT,
    MANIFEST,
    BankError,
    digest,
    mismatches,
    neighbourhood_name,
    weights_digest,
    write_json,
)
from adir_exp.retrieval.collection import read_item

if TYPE_CHECKING:
    import torch

    from adir_exp.adaptation.fit import LoRAFit
    from adir_exp.operators import Physics
    from adir_exp.priors.base import Prior
    from adir_exp.retrieval.index import EmbeddingIndex

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What one (shard of a) build did: the neighbourhoods it fitted and found done, whether the bank is complete."""

    directory: Path
    fitted: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    complete: bool = False


def identity(count: int, seed: int, encoder: str, index: EmbeddingIndex, prior: Prior, fit: LoRAFit) -> dict[str, Any]:
    """What a bank is built for; a build refuses to add to a bank of another identity, a method to use one."""
    settings = fit.settings()
    return {"num_neighbourhoods": count, "seed": seed, "encoder": encoder, "index": index.fingerprint(),
            "index_size": len(index), "prior": {"name": prior.name, "fingerprint": prior.fingerprint()},
            "adaptation": settings, "adaptation_digest": digest(settings)}  # fmt: skip


def build_bank(
    directory: str | Path,
    index: EmbeddingIndex,
    encoder: str,
    prior: Prior,
    fit: LoRAFit,
    physics: Physics,
    task: str,
    device: torch.device,
    num_neighbourhoods: int,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> BuildReport:
    """Fit the unfinished neighbourhoods of shard ``i/n`` (neighbourhoods i, i+n, …) of the bank at ``directory``;
    write the complete manifest when no neighbourhood is left (by whichever shard finishes last).

    ``encoder`` is the name of the encoder that embedded ``index``; ``task`` is recorded in the adapters.
    """
    directory = Path(directory)
    wanted = identity(num_neighbourhoods, seed, encoder, index, prior, fit)
    neighbourhoods = partition(index.vectors(np.arange(len(index))), num_neighbourhoods, seed)
    names = [neighbourhood_name(n) for n in range(len(neighbourhoods))]
    members = [[index.ids[row] for row in rows] for rows in neighbourhoods.members]
    start(directory, wanted, task, neighbourhoods.centroids, names, members)
    report = BuildReport(directory)
    mine = list(range(len(neighbourhoods)))[shard[0]::shard[1]]
    bar = tqdm(mine, desc=f"adapter bank (shard {shard[0]}/{shard[1]})", unit="neighbourhood", disable=not progress,
               dynamic_ncols=True)
    for n in bar:
        if (directory / DONE / f"{names[n]}.json").is_file():
            report.already_done.append(names[n])
            continue
        bar.set_postfix_str(f"{names[n]}: {len(members[n])} images")
        fit_neighbourhood(directory, names[n], index, neighbourhoods, n, prior, fit, physics, task, device, seed)
        report.fitted.append(names[n])
    report.complete = finish(directory)
    return report


def start(directory: Path, wanted: dict[str, Any], task: str, centroids: np.ndarray, names: Sequence[str],
          members: Sequence[Sequence[str]]) -> None:
    """Create the bank's manifest and centroids, or check that the bank there is of the same identity and
    neighbourhoods (a resumed build, another shard)."""
    manifest_path = directory / MANIFEST
    if manifest_path.is_file():
        found = json.loads(manifest_path.read_text())
        if found.get("format") != FORMAT:
            raise BankError(f"{directory} holds {manifest_path.name} of format {found.get('format')!r}, not {FORMAT!r}")
        if problems := mismatches(found["identity"], wanted):
            raise BankError(f"the bank at {directory} was built with other settings ({'; '.join(problems)}; "
                            f"bank ≠ this build): choose another bank.dir or remove that one")
        stored = np.load(directory / CENTROIDS)
        same = [n["members"] for n in found["neighbourhoods"]] == [list(m) for m in members]
        if not same or stored.shape != centroids.shape or not np.allclose(stored, centroids, atol=1e-5):
            raise BankError(f"the bank at {directory} has other neighbourhoods than this build's k-means (same "
                            f"settings: another FAISS version or thread count?): remove it or build elsewhere")
        return
    (directory / ADAPTERS).mkdir(parents=True, exist_ok=True)
    (directory / DONE).mkdir(exist_ok=True)
    temporary = directory / f".{CENTROIDS}.{os.getpid()}.tmp"
    with open(temporary, "wb") as handle:
        np.save(handle, centroids)
    os.replace(temporary, directory / CENTROIDS)
    neighbourhoods = [{"name": name, "members": list(ids)} for name, ids in zip(names, members, strict=True)]
    write_json(manifest_path, {"format": FORMAT, "identity": wanted, "task": task, "complete": False,
                               "neighbourhoods": neighbourhoods})


def fitting_rows(rows: Sequence[int], capacity: int, seed: int) -> list[int]:
    """The members a fit of ``capacity`` crops uses: all of them, or a seeded random ``capacity`` of them."""
    if len(rows) <= capacity:
        return list(rows)
    return sorted(np.random.default_rng(seed).choice(rows, size=capacity, replace=False).tolist())


def load_members(index: EmbeddingIndex, rows: Sequence[int]) -> AdaptationSet:
    images = []
    for row in rows:
        with Image.open(io.BytesIO(read_item(index.paths[row]))) as image:
            images.append(pil_to_tensor(image))
    return AdaptationSet(images, [index.ids[row] for row in rows])


def fit_neighbourhood(directory: Path, name: str, index: EmbeddingIndex, neighbourhoods: Neighbourhoods, n: int,
                      prior: Prior, fit: LoRAFit, physics: Physics, task: str, device: torch.device,
                      seed: int) -> None:
    """Fit, then write the adapter (atomically: a temporary directory renamed), then the done record."""
    started = time.perf_counter()
    rows = fitting_rows(neighbourhoods.members[n], fit.iterations * fit.batch_size, seed + n)
    images = load_members(index, rows)
    adapted = prior.copy()
    fitted = fit.fit(adapted, images, physics, device)
    target = directory / ADAPTERS / name
    temporary = directory / ADAPTERS / f".{name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    save_adapter(adapted.network, temporary, AdapterMetadata(prior.name, task, tuple(images.ids), fit.seed, fitted.lora))
    shutil.rmtree(target, ignore_errors=True)  # an adapter whose done record a killed build did not write
    os.replace(temporary, target)
    seconds = time.perf_counter() - started
    write_json(directory / DONE / f"{name}.json", {
        "name": name, "fitted_on": images.ids, "weights_sha256": weights_digest(target),
        "losses": fitted.losses, "seconds": seconds})
    log.info("bank %s: %s fitted on %d of %d members in %.1f s", directory, name, len(rows),
             len(neighbourhoods.members[n]), seconds)


def finish(directory: Path) -> bool:
    """Fold every done record into the manifest once all neighbourhoods are done; True if the bank is complete."""
    manifest = json.loads((directory / MANIFEST).read_text())
    records = [directory / DONE / f"{n['name']}.json" for n in manifest["neighbourhoods"]]
    if not all(path.is_file() for path in records):
        return False
    for entry, path in zip(manifest["neighbourhoods"], records, strict=True):
        entry |= {key: value for key, value in json.loads(path.read_text()).items() if key != "name"}
    manifest["complete"] = True
    write_json(directory / MANIFEST, manifest)
    return True
