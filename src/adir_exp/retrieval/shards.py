"""Embedding shards on disk: the resumable intermediate between embedding and indexing.

One ``.npz`` per unit of work (see :mod:`adir_exp.retrieval.collection`) holding its item ids, paths, L2-normalised
float32 embeddings and the items that could not be read. A shard is written to a temporary name and renamed, so a
shard file that exists is complete: an interrupted build resumes by skipping the units whose shard exists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAME = "shard-{:06d}.npz"
_NAME_RE = re.compile(r"shard-(\d{6,})\.npz")


@dataclass(frozen=True)
class Shard:
    ids: list[str]
    paths: list[str]
    embeddings: np.ndarray  # (n, D) float32, unit rows
    skipped: list[tuple[str, str]]  # (path, reason)


def shard_path(directory: Path, index: int) -> Path:
    return directory / _NAME.format(index)


def write_shard(directory: Path, index: int, shard: Shard) -> Path:
    """Atomically write unit ``index``'s shard."""
    if shard.embeddings.shape[0] != len(shard.ids) or len(shard.ids) != len(shard.paths):
        raise ValueError("a shard needs one id, one path and one embedding row per item")
    directory.mkdir(parents=True, exist_ok=True)
    final = shard_path(directory, index)
    temporary = final.with_name(final.name + ".tmp")
    skipped = np.array(shard.skipped, dtype=str).reshape(-1, 2)
    with open(temporary, "wb") as handle:
        np.savez(
            handle,
            ids=np.array(shard.ids, dtype=str),
            paths=np.array(shard.paths, dtype=str),
            embeddings=np.ascontiguousarray(shard.embeddings, dtype=np.float32),
            skipped=skipped,
        )
    os.replace(temporary, final)
    return final


def read_shard(path: Path) -> Shard:
    with np.load(path, allow_pickle=False) as data:
        return Shard(
            ids=data["ids"].tolist(),
            paths=data["paths"].tolist(),
            embeddings=data["embeddings"],
            skipped=[(str(p), str(r)) for p, r in data["skipped"]],
        )


def finished_units(directory: Path) -> set[int]:
    """Indices of the units whose shard is complete."""
    if not directory.is_dir():
        return set()
    return {int(m[1]) for p in directory.iterdir() if (m := _NAME_RE.fullmatch(p.name))}
