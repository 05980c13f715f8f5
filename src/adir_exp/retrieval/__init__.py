"""Retrieval of the K collection images nearest to a measurement y (or a text) for adapting the prior.

Light to import: building (Lightning, DataLoaders) lives in :mod:`adir_exp.retrieval.build`, the encoders load
their libraries only when constructed. See docs/retrieval.md.
"""

from adir_exp.retrieval.distance import spherical_distance, spherical_from_cosine
from adir_exp.retrieval.query import EncoderMismatchError, LeakageGuard, Neighbour, Neighbours, Retriever

__all__ = [
    "EncoderMismatchError",
    "LeakageGuard",
    "Neighbour",
    "Neighbours",
    "Retriever",
    "spherical_distance",
    "spherical_from_cosine",
]
