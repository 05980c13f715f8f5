"""Nearest neighbours of a degraded measurement y (or of a text prompt) for adapting the diffusion prior.

``Retriever`` (``conf/retrieval/knn.yaml``) is what adaptation code calls::

    neighbours = retriever.query_image(y, k=20, ground_truth=x)   # x only in benchmarks: leakage guard
    images = retriever.load_images(neighbours)                     # list[PIL.Image], nearest first

How y reaches the encoder: y, a (1, C, h, w) tensor in [0, 1] (values outside are clipped, as noise can push
them there), goes through the encoder's own ``preprocess``, the same as the collection's images: a one-channel y
is repeated to RGB, the shortest side is resized to the encoder resolution with antialiased bicubic
interpolation (so a low-resolution SR input is upsampled, a large one downsampled), then centre-cropped.

Leakage guard: in a benchmark the ground-truth x (or a near-copy of it) may be in the collection, and retrieving
it would leak the answer into the prior. Given ``ground_truth``, every candidate whose cosine similarity to
x's embedding is ≥ ``threshold`` is dropped (and more candidates fetched so that k remain); what was dropped is
logged and returned in ``neighbours.excluded``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adir_exp.retrieval.distance import spherical_from_cosine
from adir_exp.retrieval.encoders import ImageEncoder
from adir_exp.retrieval.index import META_FILE, EmbeddingIndex, IndexNotFoundError, RetrievalIndexError
from adir_exp.retrieval.sources import read_item

log = logging.getLogger(__name__)


class EncoderMismatchError(RetrievalIndexError):
    """The index was built with another encoder than the one configured for querying."""


@dataclass(frozen=True)
class Neighbour:
    """One retrieved image. ``distance``: spherical distance to the query, in radians."""

    id: str
    path: str
    distance: float
    row: int
    ground_truth_similarity: float | None = None  # set on the neighbours the leakage guard excluded


class Neighbours(list[Neighbour]):
    """Neighbours in ascending distance, plus those the leakage guard removed (``excluded``)."""

    def __init__(self, neighbours: Iterable[Neighbour] = (), excluded: Iterable[Neighbour] = ()) -> None:
        super().__init__(neighbours)
        self.excluded = list(excluded)


@dataclass(frozen=True)
class LeakageGuard:
    """Drop neighbours whose cosine similarity to the ground truth is at least ``threshold``.

    0.95 keeps unrelated and merely similar images (ImageNet-feature cosines between different photos stay
    well below 0.6) and catches exact and rescaled copies (a 2× downscaled copy scores ≈ 0.99).
    """

    enabled: bool = True
    threshold: float = 0.95


class Retriever:
    """K nearest collection images of an image or text query, with the leakage guard."""

    def __init__(
        self,
        index_dir: str | Path,
        encoder: ImageEncoder,
        k: int = 20,
        leakage_guard: LeakageGuard = LeakageGuard(),
        device: str = "cpu",
        nprobe: int | None = None,
        refine: int | None = None,
        build_from: str | Path | None = None,
        index_device: str = "cpu",
    ) -> None:
        """``device``: where the encoder runs; ``index_device``: where FAISS searches (``cpu``, ``cuda``,
        ``cuda:N``; a GPU needs the ``[gpu]`` extra). ``build_from``: a collection folder to index into
        ``index_dir`` when no index is there yet (small bundled collections; large ones are built with
        ``adir-index build``)."""
        if build_from is not None:
            self._ensure_built(Path(index_dir), Path(build_from), encoder)
        self.index = EmbeddingIndex(index_dir, nprobe=nprobe, refine=refine, device=index_device)
        if encoder.name != self.index.encoder_name:
            raise EncoderMismatchError(
                f"the index at {index_dir} was built with encoder {self.index.encoder_name!r}, but the configured "
                f"encoder is {encoder.name!r}; query with the same encoder or rebuild the index"
            )
        self.encoder = encoder.to(device).eval()
        self.k = k
        self.leakage_guard = leakage_guard

    @staticmethod
    def _ensure_built(index_dir: Path, build_from: Path, encoder: ImageEncoder) -> None:
        """Build the index of ``build_from`` when there is none, or when the one there indexes another folder
        (e.g. a cached index of the bundled collection from an older install: its item paths are gone)."""
        from adir_exp.retrieval.build import build_index

        meta_path = index_dir / META_FILE
        if not build_from.exists():
            if meta_path.is_file():
                return  # nothing to rebuild from: the index as it is
            raise IndexNotFoundError(
                f"no retrieval index at {index_dir} and no collection at {build_from} to build it from: create the "
                "collection first (the domain-shift study's: `adir-make-data --domains`) or set retrieval.index_dir "
                "to an index built with `adir-index build`"
            )
        stale = meta_path.is_file()
        if stale:
            built_from = json.loads(meta_path.read_text()).get("source")
            if built_from is not None and Path(built_from).resolve() == build_from.resolve():
                return
            log.info("the index at %s was built from %s, not %s: rebuilding it", index_dir, built_from, build_from)
        else:
            log.info("no index at %s: building it from %s", index_dir, build_from)
        build_index(build_from, index_dir, encoder, overwrite=stale)

    def embed_image(self, image: torch.Tensor) -> np.ndarray:
        """(1, C, h, w) or (C, h, w) tensor in [0, 1] → unit embedding (D,)."""
        if image.dim() == 4 and image.shape[0] != 1:
            raise ValueError(f"query one image at a time, got a batch of {image.shape[0]}")
        return self.encoder.encode_images(self.encoder.preprocess(image)[None])[0].numpy()

    def query_image(
        self, y: torch.Tensor, k: int | None = None, ground_truth: torch.Tensor | None = None
    ) -> Neighbours:
        """Neighbours of the measurement y; ``ground_truth`` (benchmarks only) turns on the leakage guard."""
        truth = self.embed_image(ground_truth) if ground_truth is not None else None
        return self.query_embedding(self.embed_image(y), k, truth)

    def query_text(self, text: str, k: int | None = None) -> Neighbours:
        """Neighbours of a text prompt (needs an encoder with a text tower, e.g. open_clip)."""
        return self.query_embedding(self.encoder.encode_text([text])[0].numpy(), k)

    def query_random(
        self,
        y: torch.Tensor,
        k: int | None = None,
        seed: int = 0,
        ground_truth: torch.Tensor | None = None,
        within: str | None = None,
    ) -> Neighbours:
        """K collection images drawn uniformly at random (seeded), the control for K-NN retrieval: adapting on
        them costs the same, so any gain of ADIR over this is due to *which* images were retrieved. ``within``
        draws only from the items under that folder of the collection (ids ``<within>/...``): e.g. the test
        image's own domain, the oracle of retrieval. Distances are still y's, for the log; the leakage guard
        applies as in :meth:`query_image`."""
        k = self.k if k is None else k
        pool = np.arange(len(self.index))
        if within is not None:
            pool = np.array([row for row, item in enumerate(self.index.ids) if item.startswith(f"{within}/")])
            if not len(pool):
                raise ValueError(f"no item of the collection at {self.index.directory} is under {within!r}/")
        if not 1 <= k <= len(pool):
            raise ValueError(f"k={k} but the collection at {self.index.directory} holds {len(pool)} such images")
        rows = pool[np.random.default_rng(seed).permutation(len(pool))]
        vectors = self.index.vectors(rows)
        if ground_truth is not None and self.leakage_guard.enabled:
            keep = vectors @ self.embed_image(ground_truth) < self.leakage_guard.threshold
            rows, vectors = rows[keep], vectors[keep]
        if len(rows) < k:
            raise ValueError(f"k={k} but only {len(rows)} images remain after the leakage guard")
        distances = spherical_from_cosine(vectors[:k] @ self.embed_image(y))
        return Neighbours(
            Neighbour(self.index.ids[row], self.index.paths[row], float(d), int(row))
            for row, d in zip(rows[:k], distances, strict=True)
        )

    def query_embedding(
        self, embedding: np.ndarray, k: int | None = None, ground_truth: np.ndarray | None = None
    ) -> Neighbours:
        """Neighbours of a unit embedding; candidates too close to ``ground_truth``'s embedding are excluded."""
        k = self.k if k is None else k
        size = len(self.index)
        if not 1 <= k <= size:
            raise ValueError(f"k={k} but the collection at {self.index.directory} holds {size} images")
        guard = ground_truth is not None and self.leakage_guard.enabled
        fetch = k
        while True:
            similarities, rows = self.index.search(embedding[None], fetch)
            found = rows[0] >= 0
            candidates = [
                Neighbour(self.index.ids[row], self.index.paths[row], float(distance), int(row))
                for row, distance in zip(rows[0][found], spherical_from_cosine(similarities[0][found]), strict=True)
            ]
            if not guard:
                return Neighbours(candidates)
            truth_similarity = self.index.vectors([c.row for c in candidates]) @ ground_truth
            kept = [c for c, s in zip(candidates, truth_similarity, strict=True) if s < self.leakage_guard.threshold]
            excluded = [
                replace(c, ground_truth_similarity=float(s))
                for c, s in zip(candidates, truth_similarity, strict=True)
                if s >= self.leakage_guard.threshold
            ]
            if len(kept) >= k or fetch == size:
                break
            fetch = min(size, 2 * fetch)
        if len(kept) < k:
            raise ValueError(
                f"k={k} but only {len(kept)} images remain after the leakage guard excluded {len(excluded)}"
            )
        excluded = [n for n in excluded if n.distance <= kept[k - 1].distance]  # those that displaced a neighbour
        if excluded:
            log.warning(
                "leakage guard: excluded %d near-copies of the ground truth (cosine >= %.3f): %s",
                len(excluded),
                self.leakage_guard.threshold,
                ", ".join(f"{n.id} ({n.ground_truth_similarity:.4f})" for n in excluded),
            )
        return Neighbours(kept[:k], excluded)

    @staticmethod
    def load_images(neighbours: Iterable[Neighbour]) -> list[Image.Image]:
        """The neighbours' images as RGB PIL images, in the given order (files or tar members)."""
        images = []
        for neighbour in neighbours:
            with Image.open(io.BytesIO(read_item(neighbour.path))) as image:
                images.append(image.convert("RGB"))
        return images
