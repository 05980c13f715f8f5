"""The bank's neighbourhoods: spherical k-means over the retrieval index's unit embeddings, and the nearest ones of
a query by cosine similarity (what ADIR-KNN's spherical distance orders by too)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class NeighbourhoodError(ValueError):
    """The collection cannot be split as asked (more neighbourhoods than images, an empty neighbourhood)."""


@dataclass(frozen=True)
class Neighbourhoods:
    """``centroids``: (C, D) unit vectors; ``members``: the index rows of each neighbourhood (nearest centroid)."""

    centroids: np.ndarray
    members: list[list[int]]

    def __len__(self) -> int:
        return len(self.members)


def partition(vectors: np.ndarray, count: int, seed: int = 0, iterations: int = 25) -> Neighbourhoods:
    """``count`` neighbourhoods of the (N, D) unit ``vectors`` by FAISS spherical k-means, seeded: the same vectors
    and seed give the same centroids in every process (the shards of a bank build agree on them)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not 1 <= count <= len(vectors):
        raise NeighbourhoodError(f"{count} neighbourhoods of a collection of {len(vectors)} images: choose 1 to "
                                 f"{len(vectors)}")
    kmeans = faiss.Kmeans(vectors.shape[1], count, niter=iterations, seed=seed, spherical=True, verbose=False)
    if count > 1:
        kmeans.train(vectors)
        centroids = kmeans.centroids
    else:  # FAISS refuses k = 1: the one neighbourhood is the whole collection
        mean = vectors.mean(axis=0, keepdims=True)
        centroids = mean / np.linalg.norm(mean)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    assignment = np.argmax(vectors @ centroids.T, axis=1)
    members = [np.flatnonzero(assignment == n).tolist() for n in range(count)]
    if empty := [n for n, rows in enumerate(members) if not rows]:
        raise NeighbourhoodError(f"k-means left neighbourhood(s) {empty} of {count} empty on {len(vectors)} images: "
                                 f"choose fewer neighbourhoods or another seed")
    return Neighbourhoods(centroids, members)


def nearest(embedding: np.ndarray, centroids: np.ndarray, count: int = 1) -> list[tuple[int, float]]:
    """The ``count`` centroids most similar to a unit ``embedding``: (neighbourhood, cosine), most similar first."""
    similarities = centroids @ np.asarray(embedding, dtype=np.float32).reshape(-1)
    order = np.argsort(-similarities, kind="stable")[:count]
    return [(int(n), float(similarities[n])) for n in order]
