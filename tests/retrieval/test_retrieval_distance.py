import numpy as np

from adir_exp.retrieval.distance import spherical_distance, spherical_from_cosine


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_spherical_distance_is_the_angle_between_unit_vectors():
    rng = np.random.default_rng(0)
    a, b = _unit(rng, 100), _unit(rng, 100)
    angle = np.arccos(np.clip((a * b).sum(1), -1, 1))
    np.testing.assert_allclose(spherical_distance(a, b), angle, atol=1e-9)
    np.testing.assert_allclose(spherical_from_cosine((a * b).sum(1)), angle, atol=1e-7)


def test_spherical_distance_extremes():
    e = np.eye(3)
    assert spherical_distance(e[0], e[0]) == 0.0
    np.testing.assert_allclose(spherical_distance(e[0], -e[0]), np.pi)
    np.testing.assert_allclose(spherical_distance(e[0], e[1]), np.pi / 2)
    # rounding can push an inner product past 1: still a valid distance
    assert spherical_from_cosine(np.float32(1.0000001)) == 0.0


def test_arcsin_form_resolves_near_duplicates():
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(1e-6), np.sin(1e-6)])
    np.testing.assert_allclose(spherical_distance(a, b), 1e-6, rtol=1e-6)
