"""The adapter bank on disk, and opening one for reconstruction.

A bank is a directory::

    bank.json            the manifest: format, what it was built for (``identity``: neighbourhood count and seed,
                         encoder, index fingerprint, prior name and fingerprint, LoRA fit settings and their
                         digest), the task its adapters name, and per neighbourhood its members (index ids),
                         the members it was fitted on, its adapter weights' SHA-256, loss per step and build seconds;
                         ``complete`` once every neighbourhood is fitted
    centroids.npy        (C, D) float32 unit centroids, row n = neighbourhood n
    adapters/n000/       one adapter per neighbourhood in peft's layout (adir_exp.adaptation.artifacts)
    done/n000.json       a finished neighbourhood (written after its adapter): what a resumed build skips

The bank's :attr:`AdapterBank.digest` covers the identity, the members and every adapter's weights, not the
timings: two builds of the same settings on the same machine have the same digest, and rows reconstructed with
one bank are never taken for rows of another.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adir_exp.bank.neighbourhoods import nearest

FORMAT = "adir-bank/1"
MANIFEST = "bank.json"
CENTROIDS = "centroids.npy"
ADAPTERS = "adapters"
DONE = "done"


class BankError(ValueError):
    """A bank cannot be used or extended as asked (incomplete, built for something else)."""


class BankNotFoundError(BankError, FileNotFoundError):
    """No bank at the given directory."""


def neighbourhood_name(index: int) -> str:
    return f"n{index:03d}"


def digest(value: Any) -> str:
    """16 hex digits of SHA-256 over a JSON value's canonical text."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def weights_digest(adapter: Path) -> str:
    """SHA-256 of an adapter's tensors (names, dtypes, shapes, values), not of its file: safetensors does not write
    the header's metadata in a fixed order, so equal adapters can differ in bytes."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for key, tensor in sorted(load_file(str(adapter / "adapter_model.safetensors")).items()):
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def bank_digest(manifest: dict[str, Any]) -> str:
    """What makes a bank's reconstructions what they are: its identity, members and adapter weights."""
    fitted = [{key: n[key] for key in ("members", "fitted_on", "weights_sha256")} for n in manifest["neighbourhoods"]]
    return digest({"format": manifest["format"], "identity": manifest["identity"], "neighbourhoods": fitted})


def write_json(path: Path, payload: Any) -> None:
    """Atomically (a unique temporary file, then a rename): readers and concurrent shards never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(temporary, path)


def mismatches(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """``key: found ≠ expected`` for every identity entry that differs."""
    return [f"{key} {found.get(key)!r} ≠ {expected.get(key)!r}" for key in sorted(expected | found)
            if found.get(key) != expected.get(key)]


class AdapterBank:
    """A complete bank, opened for picking adapters: its manifest, centroids and :attr:`digest`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST
        if not manifest_path.is_file():
            raise BankNotFoundError(f"no adapter bank at {self.directory} ({MANIFEST} missing): build it with "
                                    f"`adir-bank` (docs/bank.md) or set bank.dir")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise BankError(f"{manifest_path} is not an adapter bank of format {FORMAT!r}")
        if not self.manifest.get("complete"):
            done = len(list((self.directory / DONE).glob("n*.json")))
            raise BankError(f"the adapter bank at {self.directory} is incomplete ({done} of "
                            f"{len(self.manifest['neighbourhoods'])} neighbourhoods fitted): run `adir-bank` again "
                            f"with the same settings (every shard) to finish it")
        self.centroids = np.load(self.directory / CENTROIDS)
        self.names = [n["name"] for n in self.manifest["neighbourhoods"]]
        self.digest = bank_digest(self.manifest)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def identity(self) -> dict[str, Any]:
        return self.manifest["identity"]

    def adapter(self, neighbourhood: int) -> Path:
        return self.directory / ADAPTERS / self.names[neighbourhood]

    def nearest(self, embedding: np.ndarray, count: int = 1) -> list[tuple[int, float]]:
        """(neighbourhood, cosine similarity to its centroid) of the ``count`` nearest, most similar first."""
        return nearest(embedding, self.centroids, count)

    def check(self, prior: str, encoder: str, index: str) -> None:
        """Refuse a bank built for another prior (weights fingerprint), encoder or index (fingerprint)."""
        identity = self.identity
        found = {"prior fingerprint": identity["prior"]["fingerprint"], "encoder": identity["encoder"],
                 "index fingerprint": identity["index"]}
        wanted = {"prior fingerprint": prior, "encoder": encoder, "index fingerprint": index}
        if problems := mismatches(found, wanted):
            raise BankError(f"the adapter bank at {self.directory} was built for another setup "
                            f"({'; '.join(problems)}, bank ≠ this run): build a bank for this prior and index")
