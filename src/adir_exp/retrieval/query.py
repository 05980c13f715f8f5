"""Nearest neighbours of a degraded measurement y (or of a text prompt) for adapting the diffusion prior.

``Retriever`` (``conf/retrieval/knn.yaml``) is what adaptation code calls::

    neighbours = retriever.query_image(y, k=20, ground_truth=x)   # x only in benchmarks: leakage guard
    images = retriever.load_images(neighbours)                     # list[PIL.Image], nearest first

How y reaches the encoder: y, a (1, C, h, w) tensor in [0, 1] (values outside are clipped, as noise can push
them there), goes through the encoder's own ``preprocess``, the same as the collection's images: a one-channel y
is repeated to RGB, the shortest side is resized to the encoder resolution with antialiased bicubic
interpolation (so a low-resolution SR input is upsampled, a large one downsampled), then centre-cropped.

Leakage guard (:mod:`adir_exp.retrieval.leakage`): in a benchmark the ground-truth x, its source image or
another piece of the same source may be in the collection, and retrieving it would leak the answer into the
prior. Given ``ground_truth`` (and the content digest of the benchmark file it was cut from, ``source``), every candidate that shares the
source, contains the tile or is a near-copy of it is dropped (and more candidates fetched so that k remain); what
was dropped, and why, is logged and returned in ``neighbours.excluded``.
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

from adir_exp.retrieval.collection import read_item
from adir_exp.retrieval.distance import spherical_from_cosine
from adir_exp.retrieval.encoders import ImageEncoder
from adir_exp.retrieval.index import (
    META_FILE,
    EmbeddingIndex,
    IndexNotFoundError,
    RetrievalIndexError,
)
from adir_exp.retrieval.leakage import Exclusion, LeakageGuard

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
    exclusion: Exclusion | None = None  # set on the neighbours the leakage guard excluded: why


class Neighbours(list[Neighbour]):
    """Neighbours in ascending distance, plus those the leakage guard removed (``excluded``)."""

    def __init__(self, neighbours: Iterable[Neighbour] = (), excluded: Iterable[Neighbour] = ()) -> None:
        super().__init__(neighbours)
        self.excluded = list(excluded)


@dataclass(frozen=True)
class GroundTruth:
    """What the leakage guard compares candidates with: the benchmark image, its embedding, and the content digest
    of the file it was cut from when known (:func:`~adir_exp.retrieval.leakage.content_digest`)."""

    image: torch.Tensor
    embedding: np.ndarray
    source: str | None = None


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
        self,
        y: torch.Tensor,
        k: int | None = None,
        ground_truth: torch.Tensor | None = None,
        source: str | None = None,
    ) -> Neighbours:
        """Neighbours of the measurement y; ``ground_truth`` (benchmarks only) turns on the leakage guard,
        ``source`` (the content digest of the file the ground truth was cut from) its source-identity check."""
        return self.query_embedding(self.embed_image(y), k, self.ground_truth(ground_truth, source))

    def ground_truth(self, image: torch.Tensor | None, source: str | None = None) -> GroundTruth | None:
        """What the leakage guard needs of a benchmark image (None when there is none or the guard is off)."""
        if image is None or not self.leakage_guard.enabled:
            return None
        return GroundTruth(image, self.embed_image(image), source)

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
        source: str | None = None,
    ) -> Neighbours:
        """K collection images drawn uniformly at random (seeded), the control for K-NN retrieval: adapting on
        them costs the same, so any gain of ADIR over this is due to *which* images were retrieved. ``within``
        draws only from the items under that folder of the collection (ids ``<within>/...``): e.g. the test
        image's own domain, the oracle of retrieval. Distances are still y's, for the log; the leakage guard
        applies as in :meth:`query_image`."""
        k = self.k if k is None else k
        pool = np.arange(len(self.index)) if within is None else self.rows_within(within)
        if not 1 <= k <= len(pool):
            raise ValueError(f"k={k} but the collection at {self.index.directory} holds {len(pool)} such images")
        rows = pool[np.random.default_rng(seed).permutation(len(pool))]
        distances = spherical_from_cosine(self.index.vectors(rows) @ self.embed_image(y))
        drawn = [Neighbour(self.index.ids[row], self.index.paths[row], float(d), int(row))
                 for row, d in zip(rows, distances, strict=True)]
        truth = self.ground_truth(ground_truth, source)
        kept, excluded = self._guarded(drawn, truth, k)
        if len(kept) < k:
            raise ValueError(f"k={k} but only {len(kept)} images remain after the leakage guard")
        self._log_excluded(excluded)
        return Neighbours(kept[:k], excluded)

    def rows_within(self, within: str) -> np.ndarray:
        """Index rows of the collection items under the folder ``within`` (ids ``<within>/...``)."""
        rows = np.array([row for row, item in enumerate(self.index.ids) if item.startswith(f"{within}/")], dtype=int)
        if not len(rows):
            raise ValueError(f"no item of the collection at {self.index.directory} is under {within!r}/")
        return rows

    def query_domain(
        self, within: str, k: int | None = None, ground_truth: torch.Tensor | None = None, source: str | None = None
    ) -> Neighbours:
        """The K collection images nearest to the centroid of the items under ``within`` (the mean of their unit
        embeddings, renormalised): one set for every query of that domain, the control that tells per-image
        retrieval from per-domain retrieval. The leakage guard applies as in :meth:`query_image`."""
        centroid = self.index.vectors(self.rows_within(within)).mean(axis=0)
        return self.query_embedding(centroid / np.linalg.norm(centroid), k, self.ground_truth(ground_truth, source))

    def query_embedding(
        self, embedding: np.ndarray, k: int | None = None, ground_truth: GroundTruth | None = None
    ) -> Neighbours:
        """Neighbours of a unit embedding; with ``ground_truth``, the leakage guard drops candidates."""
        k = self.k if k is None else k
        size = len(self.index)
        if not 1 <= k <= size:
            raise ValueError(f"k={k} but the collection at {self.index.directory} holds {size} images")
        fetch = k
        while True:
            similarities, rows = self.index.search(embedding[None], fetch)
            found = rows[0] >= 0
            candidates = [
                Neighbour(self.index.ids[row], self.index.paths[row], float(distance), int(row))
                for row, distance in zip(rows[0][found], spherical_from_cosine(similarities[0][found]), strict=True)
            ]
            kept, excluded = self._guarded(candidates, ground_truth, k)
            if len(kept) >= k or fetch == size:
                break
            fetch = min(size, 2 * fetch)
        if len(kept) < k:
            raise ValueError(
                f"k={k} but only {len(kept)} images remain after the leakage guard excluded {len(excluded)}"
            )
        self._log_excluded(excluded)
        return Neighbours(kept[:k], excluded)

    def _guarded(
        self, candidates: list[Neighbour], truth: GroundTruth | None, k: int
    ) -> tuple[list[Neighbour], list[Neighbour]]:
        """Walk the candidates in order until k pass the leakage guard: (kept, excluded before the k-th)."""
        if truth is None:
            return candidates, []
        kept, excluded = [], []
        similarities = self.index.vectors([c.row for c in candidates]) @ truth.embedding if candidates else []
        for candidate, similarity in zip(candidates, similarities, strict=True):
            if len(kept) == k:
                break
            with Image.open(io.BytesIO(read_item(candidate.path))) as image:
                pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
            why = self.leakage_guard.exclusion(candidate.path, pixels, truth.image, float(similarity), truth.source)
            if why is None:
                kept.append(candidate)
            else:
                excluded.append(replace(candidate, exclusion=why))
        return kept, excluded

    def _log_excluded(self, excluded: list[Neighbour]) -> None:
        if excluded:
            log.warning(
                "leakage guard: excluded %d collection image(s) for sharing the ground truth's source or content: %s",
                len(excluded),
                ", ".join(f"{n.id} ({n.exclusion.reason} {n.exclusion.score:.3f})" for n in excluded),
            )

    @staticmethod
    def load_images(neighbours: Iterable[Neighbour]) -> list[Image.Image]:
        """The neighbours' images as RGB PIL images, in the given order (files or tar members)."""
        images = []
        for neighbour in neighbours:
            with Image.open(io.BytesIO(read_item(neighbour.path))) as image:
                images.append(image.convert("RGB"))
        return images
