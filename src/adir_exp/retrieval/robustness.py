"""Robustness of retrieval to the degradation (the paper's Fig. 21): do x and A(x) find the same neighbours?

For each image x and each degradation A: recall@K = |N_K(x) ∩ N_K(A(x))| / K, with N_K the K nearest
collection images. 1 means querying with the degraded y retrieves exactly what the clean image would; the
adaptation then sees the same prior data as an oracle query. The ground truth's near-copies are excluded from
both neighbour sets (leakage guard), so a copy of x in the collection cannot inflate the overlap.

A degradation is any callable (B, 3, H, W) → measurement: an operator's ``A`` (``adir_exp.operators``, from a
``conf/task/*.yaml``), or a plain function in tests.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from adir_exp.retrieval.query import Retriever

Degradation = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class OverlapRow:
    """Mean and spread over the images of recall@K for one degradation."""

    degradation: str
    k: int
    recall_mean: float
    recall_std: float
    n_images: int


def neighbour_overlap(
    retriever: Retriever,
    images: Iterable[torch.Tensor],
    degradations: Mapping[str, Degradation],
    ks: Sequence[int] = (1, 5, 10, 20, 50),
    guard: bool = True,
) -> list[OverlapRow]:
    """Recall@K of the degraded query's neighbours against the clean query's, for every degradation and K."""
    if not degradations:
        raise ValueError("no degradation given")
    k_max = max(ks)
    recalls: dict[tuple[str, int], list[float]] = {(name, k): [] for name in degradations for k in ks}
    for x in images:
        truth = retriever.ground_truth(x) if guard else None  # x itself is in the collection: the guard drops it
        clean_embedding = truth.embedding if truth is not None else retriever.embed_image(x)
        clean = [n.id for n in retriever.query_embedding(clean_embedding, k_max, truth)]
        for name, degrade in degradations.items():
            with torch.no_grad():
                y = degrade(x)
            degraded = [n.id for n in retriever.query_embedding(retriever.embed_image(y), k_max, truth)]
            for k in ks:
                recalls[name, k].append(len(set(clean[:k]) & set(degraded[:k])) / k)
    return [
        OverlapRow(name, k, float(np.mean(values)), float(np.std(values)), len(values))
        for (name, k), values in recalls.items()
    ]


def write_csv(rows: Sequence[OverlapRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return path


def plot(rows: Sequence[OverlapRow], path: Path, title: str = "Neighbours of A(x) vs neighbours of x") -> Path:
    """Recall@K against K, one line per degradation (shaded: ± one standard deviation over images)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(row.degradation for row in rows):
        own = sorted((row for row in rows if row.degradation == name), key=lambda row: row.k)
        ks = [row.k for row in own]
        mean = np.array([row.recall_mean for row in own])
        std = np.array([row.recall_std for row in own])
        axes.plot(ks, mean, marker="o", label=name)
        axes.fill_between(ks, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), alpha=0.15)
    axes.set_xscale("log")
    all_ks = sorted({row.k for row in rows})
    axes.set_xticks(all_ks, [str(k) for k in all_ks])
    axes.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes.set_xlabel("K")
    axes.set_ylabel("recall@K (overlap with clean neighbours)")
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
