"""Neighbourhoods: seeded spherical k-means of unit embeddings, and the nearest centroids of a query."""

from __future__ import annotations

import numpy as np
import pytest

from adir_exp.bank import NeighbourhoodError, nearest, partition


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def two_clusters(seed: int = 0) -> np.ndarray:
    """Rows 0–9 around +e0, rows 10–19 around +e1, in 8 dimensions."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(np.eye(8)[:2], 10, axis=0)
    return unit(centres + 0.1 * rng.normal(size=(20, 8)))


def test_k_means_finds_the_clusters_with_unit_centroids() -> None:
    found = partition(two_clusters(), 2, seed=0)
    assert sorted(found.members) == [list(range(10)), list(range(10, 20))]
    np.testing.assert_allclose(np.linalg.norm(found.centroids, axis=1), 1.0, rtol=1e-5)
    for n, rows in enumerate(found.members):  # every member is nearest to its own neighbourhood's centroid
        assert (np.argmax(two_clusters()[rows] @ found.centroids.T, axis=1) == n).all()


def test_the_same_seed_gives_the_same_neighbourhoods_and_another_may_not() -> None:
    vectors = unit(np.random.default_rng(1).normal(size=(60, 8)))
    first, again = partition(vectors, 4, seed=3), partition(vectors, 4, seed=3)
    assert np.array_equal(first.centroids, again.centroids) and first.members == again.members
    assert sorted(sum(first.members, [])) == list(range(60))  # a partition: every row exactly once


def test_one_neighbourhood_is_the_whole_collection() -> None:
    found = partition(two_clusters(), 1)
    assert found.members == [list(range(20))]
    np.testing.assert_allclose(np.linalg.norm(found.centroids), 1.0, rtol=1e-6)


@pytest.mark.parametrize("count", [0, 21])
def test_more_neighbourhoods_than_images_or_none_are_refused(count: int) -> None:
    with pytest.raises(NeighbourhoodError, match=f"{count} neighbourhoods of a collection of 20 images"):
        partition(two_clusters(), count)


def test_nearest_orders_centroids_by_cosine() -> None:
    centroids = unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    query = unit(np.array([[0.2, 1.0]]))[0]
    picks = nearest(query, centroids, 2)
    assert [n for n, _ in picks] == [1, 2]
    assert picks[0][1] == pytest.approx(float(centroids[1] @ query))
