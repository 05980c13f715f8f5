"""Adaptation image sources: which images each one collects for a problem, and what it refuses."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from adir_exp.adaptation import AdaptationImageError
from adir_exp.adaptation.sources import (
    SELF_IMAGE_ID,
    GivenImages,
    NearestImages,
    NearestToDomainCentroid,
    NearestToText,
    RandomImages,
    SelfImage,
)
from adir_exp.data.images import save_image, to_image_range
from adir_exp.retrieval.query import Neighbour, Neighbours


class FakeRetriever:
    """Answers any query with two solid-colour images and records what it was asked."""

    k = 2

    def __init__(self) -> None:
        self.queries: list[tuple[str, object, object]] = []

    def answer(self) -> Neighbours:
        return Neighbours([Neighbour("red", "r.png", 0.1, 0), Neighbour("blue", "b.png", 0.2, 1)])

    def query_image(self, y, k=None, ground_truth=None, source=None) -> Neighbours:
        self.queries.append(("image", y, ground_truth))
        return self.answer()

    def query_text(self, text, k=None) -> Neighbours:
        self.queries.append(("text", text, None))
        return self.answer()

    def query_random(self, y, k=None, seed=0, ground_truth=None, within=None, source=None) -> Neighbours:
        self.queries.append(("random", seed, ground_truth, within))
        return self.answer()

    def query_domain(self, within, k=None, ground_truth=None, source=None) -> Neighbours:
        self.queries.append(("domain", within, ground_truth))
        return self.answer()

    @staticmethod
    def load_images(neighbours) -> list[Image.Image]:
        colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
        return [Image.new("RGB", (40, 36), colours[n.id]) for n in neighbours]


def test_self_adapts_on_the_pseudo_inverse_of_y(sr_problem) -> None:
    found = SelfImage().collect(sr_problem)
    expected = to_image_range(sr_problem.physics.operator.A_pinv(sr_problem.y))
    assert found.ids == [SELF_IMAGE_ID] and found.expected == 1
    (image,) = found.images
    assert image.shape == (1, 3, 32, 32)
    torch.testing.assert_close(image, expected)


def test_nearest_queries_y_in_image_range_with_the_ground_truth_for_the_leakage_guard(sr_problem) -> None:
    retriever = FakeRetriever()
    found = NearestImages().collect(sr_problem, retriever)
    ((kind, y, truth),) = retriever.queries
    assert kind == "image"
    torch.testing.assert_close(y, to_image_range(sr_problem.y))
    assert truth is sr_problem.ground_truth
    assert found.ids == ["red", "blue"] and found.expected == 2 and found.distances == [0.1, 0.2]
    assert [img.shape for img in found.images] == [(1, 3, 36, 40)] * 2
    assert found.images[0][0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_random_draws_with_the_problems_own_seed(sr_problem) -> None:
    retriever = FakeRetriever()
    RandomImages().collect(sr_problem, retriever)
    RandomImages(within="astronomy").collect(sr_problem, retriever)  # the oracle: one folder of the collection
    assert retriever.queries == [("random", sr_problem.seed, sr_problem.ground_truth, None),
                                 ("random", sr_problem.seed, sr_problem.ground_truth, "astronomy")]


def test_domain_centroid_queries_the_folder_with_the_ground_truth_and_needs_one(sr_problem) -> None:
    retriever = FakeRetriever()
    found = NearestToDomainCentroid("astronomy").collect(sr_problem, retriever)
    assert retriever.queries == [("domain", "astronomy", sr_problem.ground_truth)]
    assert found.ids == ["red", "blue"] and found.expected == 2 and found.distances == [0.1, 0.2]
    with pytest.raises(AdaptationImageError, match="source.within"):
        NearestToDomainCentroid("")


def test_text_source_queries_its_text_and_needs_one(sr_problem) -> None:
    retriever = FakeRetriever()
    NearestToText("a red car").collect(sr_problem, retriever)
    assert retriever.queries == [("text", "a red car", None)]
    with pytest.raises(AdaptationImageError, match="task=edit"):
        NearestToText(None)


def test_given_images_from_a_list_or_a_folder(sr_problem, tmp_path) -> None:
    paths = [save_image(torch.rand(1, 3, 40, 40), tmp_path / f"{i}.png") for i in range(2)]
    (tmp_path / "notes.txt").write_text("not an image")
    for given in ([str(p) for p in paths], str(tmp_path)):
        found = GivenImages(given).collect(sr_problem)
        assert found.ids == [str(p) for p in paths] and found.expected is None
        assert [img.shape for img in found.images] == [(1, 3, 40, 40)] * 2
    with pytest.raises(AdaptationImageError, match="not found"):
        GivenImages([str(tmp_path / "missing.png")])


def test_sources_declare_whether_they_search_the_collection() -> None:
    assert NearestImages.needs_retriever and RandomImages.needs_retriever and NearestToText.needs_retriever
    assert NearestToDomainCentroid.needs_retriever
    assert not SelfImage.needs_retriever and not GivenImages.needs_retriever
