"""The paper's spherical distance between L2-normalised embeddings: d(a, b) = 2·arcsin(½‖ξ(a) − ξ(b)‖).

It is the great-circle angle between the unit vectors (in [0, π]), so ranking by it equals ranking by inner
product; the index searches by inner product and converts with :func:`spherical_from_cosine`. The arcsin form
stays accurate for near-duplicates, where arccos(cos) loses precision.
"""

from __future__ import annotations

import numpy as np


def spherical_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise distance between unit vectors ``a`` and ``b`` of shape (..., D)."""
    chord = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
    return 2.0 * np.arcsin(np.clip(0.5 * chord, 0.0, 1.0))


def spherical_from_cosine(cosine: np.ndarray) -> np.ndarray:
    """The same distance from inner products of unit vectors (‖a − b‖² = 2 − 2⟨a, b⟩)."""
    chord = np.sqrt(np.clip(2.0 - 2.0 * np.asarray(cosine, np.float64), 0.0, 4.0))
    return 2.0 * np.arcsin(np.clip(0.5 * chord, 0.0, 1.0))
