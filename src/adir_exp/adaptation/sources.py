"""Where the adaptation images come from (the paper's D_IA and its variants), one class per source.

A source turns a :class:`~adir_exp.problem.Problem` into an :class:`AdaptationSet`: y itself (``SelfImage``),
the K collection images nearest to y (``NearestImages``, the paper's ADIR) or to a text (``NearestToText``,
editing), K random collection images (``RandomImages``: the control, same cost, unrelated images), the K nearest
to the centroid of one collection folder (``NearestToDomainCentroid``: per-domain instead of per-image
retrieval) or images the user names (``GivenImages``). Sources that search the collection declare
``needs_retriever``; the command refuses such a method without a retriever before any work starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from adir_exp.adaptation.crops import AdaptationImageError
from adir_exp.data.images import IMAGE_SUFFIXES, load_image, to_image_range

if TYPE_CHECKING:
    from adir_exp.problem import Problem
    from adir_exp.retrieval.query import Neighbours, Retriever

SELF_IMAGE_ID = "A+y"


@dataclass
class AdaptationSet:
    """The images adaptation fits ((1, 3, H, W) in [0, 1]), their ids (recorded with the adapter and in result
    rows), and how many were meant to be there (K for retrieval) so that a shortfall is reported."""

    images: list[torch.Tensor]
    ids: list[str]
    expected: int | None = None
    distances: list[float] = field(default_factory=list)  # to the query, for retrieved images


class AdaptationSource(ABC):
    """Collects the adaptation images for one problem."""

    needs_retriever = False

    @abstractmethod
    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet: ...

    def __repr__(self) -> str:
        return type(self).__name__


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image → (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def _retrieved(neighbours: Neighbours, retriever: Retriever, what: str) -> AdaptationSet:
    if not neighbours:
        raise AdaptationImageError(f"{what} found no images in the collection at {retriever.index.directory}")
    images = [pil_to_tensor(image) for image in retriever.load_images(neighbours)]
    return AdaptationSet(images, [n.id for n in neighbours], retriever.k, [n.distance for n in neighbours])


class SelfImage(AdaptationSource):
    """y itself in image space (A⁺y; for blur, y): adaptation on the measurement, the paper's variant."""

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        return AdaptationSet([problem.y_as_image().clamp(0, 1)], [SELF_IMAGE_ID], expected=1)


class NearestImages(AdaptationSource):
    """The K collection images nearest to y (eq. 19, spherical distance); near-copies of the ground truth are
    dropped by the retriever's leakage guard."""

    needs_retriever = True

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        y = to_image_range(problem.y).cpu()
        neighbours = retriever.query_image(y, ground_truth=problem.ground_truth, source=problem.source)
        return _retrieved(neighbours, retriever, "retrieval for y")


class NearestToText(AdaptationSource):
    """The K collection images nearest to a text (editing: y has a hole exactly where the edit goes)."""

    needs_retriever = True

    def __init__(self, query: str | None) -> None:
        if not query:
            raise AdaptationImageError(
                "NearestToText needs a text query: use task=edit (its retrieval_query) or set the method's "
                "source.query"
            )
        self.query = query

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        return _retrieved(retriever.query_text(self.query), retriever, f"text retrieval for {self.query!r}")

    def __repr__(self) -> str:
        return f"NearestToText({self.query!r})"


class RandomImages(AdaptationSource):
    """K collection images drawn at random with the problem's own seed: the control for retrieval. Adapting on
    them costs the same, so what ADIR gains over this comes from *which* images were retrieved.

    ``within`` draws only from one folder of the collection (``<within>/...``, e.g. the test image's domain):
    the oracle of retrieval, K images surely of the right kind without looking at y.
    """

    needs_retriever = True

    def __init__(self, within: str | None = None) -> None:
        self.within = within

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        y = to_image_range(problem.y).cpu()
        neighbours = retriever.query_random(y, seed=problem.seed, ground_truth=problem.ground_truth,
                                            within=self.within, source=problem.source)
        return _retrieved(neighbours, retriever, f"random draw{f' within {self.within}/' if self.within else ''}")

    def __repr__(self) -> str:
        return f"RandomImages(within={self.within!r})" if self.within else "RandomImages()"


class NearestToDomainCentroid(AdaptationSource):
    """The K collection images nearest to the centroid of one collection folder (``<within>/...``, e.g. the test
    image's domain): the same images for every test image of that domain. The control for retrieval's
    specificity: what ADIR gains over this comes from retrieving for each image rather than for its domain."""

    needs_retriever = True

    def __init__(self, within: str) -> None:
        if not within:
            raise AdaptationImageError(
                "NearestToDomainCentroid needs a collection folder: set the method's source.within (e.g. astronomy)"
            )
        self.within = within

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        neighbours = retriever.query_domain(self.within, ground_truth=problem.ground_truth, source=problem.source)
        return _retrieved(neighbours, retriever, f"retrieval for the centroid of {self.within}/")

    def __repr__(self) -> str:
        return f"NearestToDomainCentroid({self.within!r})"


class GivenImages(AdaptationSource):
    """Images the user names: a folder (every image in it, sorted) or a list of files."""

    def __init__(self, images: str | Path | Sequence[str | Path]) -> None:
        paths = [Path(images)] if isinstance(images, (str, Path)) else [Path(p) for p in images]
        if len(paths) == 1 and paths[0].is_dir():
            paths = sorted(p for p in paths[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing or not paths:
            raise AdaptationImageError(f"adaptation images not found: {missing or images}")
        self.paths = paths

    def collect(self, problem: Problem, retriever: Retriever | None = None) -> AdaptationSet:
        return AdaptationSet([load_image(p) for p in self.paths], [str(p) for p in self.paths])

    def __repr__(self) -> str:
        return f"GivenImages({len(self.paths)} files)"
