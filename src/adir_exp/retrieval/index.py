"""The searchable index: its files, how it is assembled from embedding shards, and exact / IVF-PQ search.

An index directory holds

* ``meta.json``: encoder fingerprint, embedding size, item count, search structure (written last: its presence
  means the index is complete),
* ``embeddings.npy``: all L2-normalised float32 embeddings (row i = item i), memory-mapped at query time,
* ``items.jsonl``: one ``{"id", "path"}`` per row (a relative path is relative to the index directory, so an index
  bundled with its images, such as the demo's, can move with them),
* ``skipped.tsv``: unreadable / corrupt inputs and why,
* ``ivfpq.faiss``: the trained IVF-PQ structure, for collections past ``ivfpq_min_size`` (``kind: auto``),
* ``shards/`` and ``manifest.json``: the resumable build state (see :mod:`adir_exp.retrieval.build`).

Exact search is a FAISS ``IndexFlatIP`` (inner product = cosine on unit vectors). IVF-PQ returns
``refine × k`` candidates that are re-ranked with the exact embeddings, so reported distances are always exact
and only recall is approximate.

GPUs: the default FAISS build (``faiss-cpu``) has none; the ``[gpu]`` extra brings ``faiss-gpu``. Search stays on
the CPU unless ``device`` says ``cuda`` (every GPU FAISS sees, database sharded across them) or ``cuda:N``: the
index then takes GPU memory (1M × 512 exact: 2 GB) next to the diffusion model, so it is a choice. IVF-PQ
training is a one-off batch job and uses a GPU whenever FAISS has one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adir_exp.retrieval.shards import read_shard, shard_path

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

META_FILE = "meta.json"
EMBEDDINGS_FILE = "embeddings.npy"
ITEMS_FILE = "items.jsonl"
SKIPPED_FILE = "skipped.tsv"
IVFPQ_FILE = "ivfpq.faiss"
FORMAT_VERSION = 1


class RetrievalIndexError(RuntimeError):
    """An index cannot be built or used as asked."""


class IndexNotFoundError(RetrievalIndexError, FileNotFoundError):
    """No complete index at the given directory."""


class EmptyCollectionError(RetrievalIndexError, ValueError):
    """The collection has no readable image."""


@dataclass(frozen=True)
class IndexConfig:
    """Search structure. ``auto``: exact below ``ivfpq_min_size`` items, IVF-PQ from there on.

    IVF-PQ defaults were chosen with ``benchmarks/bench_retrieval.py`` (1M × 512, see docs/retrieval.md).
    """

    kind: str = "auto"  # auto | flat | ivfpq
    ivfpq_min_size: int = 1_000_000
    nlist: int = 1024
    m: int = 64
    nbits: int = 8
    nprobe: int = 32
    refine: int = 10
    train_size: int = 65_536
    seed: int = 0

    def resolve(self, count: int) -> str:
        if self.kind not in ("auto", "flat", "ivfpq"):
            raise ValueError(f"index kind must be auto, flat or ivfpq, got {self.kind!r}")
        if self.kind == "auto":
            return "ivfpq" if count >= self.ivfpq_min_size else "flat"
        return self.kind


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    os.replace(temporary, path)


def assemble_index(
    shard_dir: Path,
    unit_indices: Iterable[int],
    out_dir: Path,
    encoder_name: str,
    embed_dim: int,
    config: IndexConfig,
    source: str,
) -> dict:
    """Concatenate the shards (in unit order) into an index under ``out_dir``; returns its metadata."""
    paths = [shard_path(shard_dir, i) for i in sorted(unit_indices)]
    (out_dir / META_FILE).unlink(missing_ok=True)
    count = 0
    with open(out_dir / ITEMS_FILE, "w") as items, open(out_dir / SKIPPED_FILE, "w") as skipped_file:
        skipped = 0
        for path in paths:
            shard = read_shard(path)
            for item_id, item_path in zip(shard.ids, shard.paths, strict=True):
                items.write(json.dumps({"id": item_id, "path": item_path}) + "\n")
            for item_path, reason in shard.skipped:
                skipped_file.write(f"{item_path}\t{reason}\n")
            count += len(shard.ids)
            skipped += len(shard.skipped)
    if count == 0:
        raise EmptyCollectionError(
            f"no readable image in {source} ({skipped} unreadable, listed in {out_dir / SKIPPED_FILE})"
        )

    embeddings = np.lib.format.open_memmap(
        out_dir / EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(count, embed_dim)
    )
    row = 0
    for path in paths:
        block = read_shard(path).embeddings
        if block.shape[1:] != (embed_dim,):
            raise ValueError(f"{path} holds {block.shape[1:]} embeddings, the encoder gives ({embed_dim},)")
        embeddings[row : row + len(block)] = block
        row += len(block)
    embeddings.flush()

    kind = config.resolve(count)
    if kind == "ivfpq":
        _train_ivfpq(embeddings, config, out_dir / IVFPQ_FILE)
    meta = {
        "format": FORMAT_VERSION,
        "encoder": encoder_name,
        "embed_dim": embed_dim,
        "count": count,
        "skipped": skipped,
        "kind": kind,
        "config": asdict(config),
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_json(out_dir / META_FILE, meta)
    log.info("index of %d images (%s, %d unreadable) written to %s", count, kind, skipped, out_dir)
    return meta


def faiss_gpus(device: str) -> tuple[int, ...]:
    """The GPUs a FAISS ``device`` names: none for ``cpu``, every GPU FAISS sees for ``cuda``, N for ``cuda:N``."""
    match = re.fullmatch(r"cpu|cuda(?::(\d+))?", device)
    if match is None:
        raise ValueError(f"FAISS device must be cpu, cuda or cuda:N, got {device!r}")
    if device == "cpu":
        return ()
    import faiss
    available = faiss.get_num_gpus()
    if available == 0:
        raise RetrievalIndexError(
            f"index device {device!r}: this FAISS build ({faiss.__version__}) has no GPU support or sees no GPU; "
            "install the GPU build (`pip install -e '.[gpu]'`, see pyproject.toml) or search on the cpu"
        )
    if match[1] is None:
        return tuple(range(available))
    if int(match[1]) >= available:
        raise RetrievalIndexError(f"index device {device!r}: FAISS sees {available} GPU(s)")
    return (int(match[1]),)


def _to_gpus(index: faiss.Index, float16_tables: bool, gpus: tuple[int, ...]) -> faiss.Index:
    """Clone to ``gpus`` (database sharded across them); no GPU keeps the CPU index.

    ``float16_tables`` only for IVF-PQ (its lookup tables need fp16 past 48 sub-quantizers); exact search stays
    fp32.
    """
    if not gpus:
        return index
    import faiss

    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = float16_tables
    options.shard = True
    return faiss.index_cpu_to_gpus_list(index, co=options, gpus=list(gpus))


def _train_ivfpq(embeddings: np.ndarray, config: IndexConfig, out: Path) -> None:
    import faiss

    count, dim = embeddings.shape
    if dim % config.m:
        raise ValueError(f"IVF-PQ needs m ({config.m}) to divide the embedding size ({dim})")
    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(count, size=min(count, config.train_size), replace=False))
    quantizer = faiss.IndexFlatIP(dim)
    cpu_index = faiss.IndexIVFPQ(quantizer, dim, config.nlist, config.m, config.nbits, faiss.METRIC_INNER_PRODUCT)
    # one GPU at most: shards would each learn their own quantizer
    index = _to_gpus(cpu_index, float16_tables=True, gpus=(0,) if faiss.get_num_gpus() else ())
    started = time.perf_counter()
    index.train(np.ascontiguousarray(embeddings[sample]))
    for start in range(0, count, 262_144):
        index.add(np.ascontiguousarray(embeddings[start : start + 262_144]))
    log.info("IVF-PQ trained on %d vectors and filled in %.1f s", len(sample), time.perf_counter() - started)
    cpu = faiss.index_gpu_to_cpu(index) if index is not cpu_index else cpu_index
    faiss.write_index(cpu, str(out))


class EmbeddingIndex:
    """A complete index loaded for search, on the CPU or, with ``device="cuda"`` / ``"cuda:N"``, the GPU(s)."""

    def __init__(
        self, directory: str | Path, nprobe: int | None = None, refine: int | None = None, device: str = "cpu"
    ) -> None:
        import faiss

        self.directory = Path(directory)
        self.device = device
        gpus = faiss_gpus(device)  # before loading: a wrong device fails fast
        meta_path = self.directory / META_FILE
        if not meta_path.is_file():
            raise IndexNotFoundError(
                f"no complete index at {self.directory} (missing {META_FILE}); build one with `adir-index build`"
            )
        self.meta = json.loads(meta_path.read_text())
        self.encoder_name: str = self.meta["encoder"]
        self.embed_dim: int = self.meta["embed_dim"]
        self.kind: str = self.meta["kind"]
        self.embeddings = np.load(self.directory / EMBEDDINGS_FILE, mmap_mode="r")
        with open(self.directory / ITEMS_FILE) as handle:
            items = [json.loads(line) for line in handle]
        self.ids = [item["id"] for item in items]
        self.paths = [item["path"] if os.path.isabs(item["path"]) else os.path.normpath(self.directory / item["path"])
                      for item in items]
        if not len(self.ids) == len(self.embeddings) == self.meta["count"]:
            raise RetrievalIndexError(f"{self.directory}: items, embeddings and meta.json disagree on the item count")
        config = self.meta["config"]
        self.refine = refine if refine is not None else config["refine"]
        if self.kind == "flat":
            cpu = faiss.IndexFlatIP(self.embed_dim)
            cpu.add(np.ascontiguousarray(self.embeddings))
            self._index = _to_gpus(cpu, float16_tables=False, gpus=gpus)
        else:
            cpu = faiss.read_index(str(self.directory / IVFPQ_FILE))
            cpu.nprobe = nprobe if nprobe is not None else config["nprobe"]
            self._index = _to_gpus(cpu, float16_tables=True, gpus=gpus)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows by inner product for each unit-norm query: (similarities, rows), best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.embed_dim)
        if not 1 <= k <= len(self):
            raise ValueError(f"k must be between 1 and the collection size ({len(self)}), got {k}")
        if self.kind == "flat":
            return self._index.search(queries, k)
        candidates = min(len(self), k * max(1, self.refine))
        _, rows = self._index.search(queries, candidates)
        out_sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_rows = np.full((len(queries), k), -1, dtype=np.int64)
        for q, found in enumerate(rows):
            found = np.sort(found[found >= 0])  # sorted rows read the memory map sequentially
            exact = self.embeddings[found] @ queries[q]
            best = np.argsort(-exact, kind="stable")[:k]
            out_sims[q, : len(best)] = exact[best]
            out_rows[q, : len(best)] = found[best]
        return out_sims, out_rows

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """Exact embeddings of the given rows."""
        return np.asarray(self.embeddings[np.asarray(rows)], dtype=np.float32)

    def fingerprint(self) -> str:
        """A digest of the ids and embeddings (what a search can return), so that anything fitted on this index
        (an adapter bank) is never used with another (reads every vector: call it once per run)."""
        digest = hashlib.sha256("\n".join(self.ids).encode())
        for start in range(0, len(self), 65_536):
            digest.update(np.ascontiguousarray(self.embeddings[start : start + 65_536], dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]
