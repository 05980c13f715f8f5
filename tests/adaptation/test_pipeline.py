"""The adir-run adaptation steps: which images are adapted on, training placement, adapt → save → reload."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from adir_exp.adaptation import AdaptationImageError, GDObjective, load_adapter
from adir_exp.adaptation.pipeline import SELF_IMAGE_ID, adapt, collect_images, trainer_placement
from adir_exp.data.images import save_image, to_image_range
from adir_exp.metrics import PSNR, MetricSuite
from adir_exp.models import UNetDenoiser, random_adm
from adir_exp.operators import BicubicDownsample, GaussianNoise
from adir_exp.reconstruction import degrade, restore
from adir_exp.retrieval import Neighbour, Neighbours, NoRetrieval
from adir_exp.samplers import ADIRGuidedSampler
from tests.adaptation.conftest import TINY_ADM

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


@pytest.fixture
def degradation(photo):
    return degrade(photo[..., :32, :32], BicubicDownsample(4), GaussianNoise(0.0), seed=0, device=torch.device("cpu"))


class FakeRetriever:
    """Answers any query with two solid-colour images and records what it was asked."""

    k = 2

    def __init__(self) -> None:
        self.queries: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def query_image(self, y, k=None, ground_truth=None) -> Neighbours:
        self.queries.append((y, ground_truth))
        return Neighbours([Neighbour("red", "r.png", 0.1, 0), Neighbour("blue", "b.png", 0.2, 1)])

    @staticmethod
    def load_images(neighbours) -> list[Image.Image]:
        colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
        return [Image.new("RGB", (40, 36), colours[n.id]) for n in neighbours]


def test_self_adapts_on_the_pseudo_inverse_of_y(degradation) -> None:
    found = collect_images("self", degradation, None, None)
    expected = to_image_range(degradation.operator.A_pinv(degradation.y))
    assert found.ids == [SELF_IMAGE_ID] and found.expected == 1
    (image,) = found.images
    assert image.shape == (1, 3, 32, 32)
    torch.testing.assert_close(image, expected)


def test_knn_queries_y_in_image_range_with_the_ground_truth_for_the_leakage_guard(degradation) -> None:
    retriever = FakeRetriever()
    found = collect_images("knn", degradation, retriever, None)
    ((y, truth),) = retriever.queries
    torch.testing.assert_close(y, to_image_range(degradation.y))
    assert truth is degradation.ground_truth
    assert found.ids == ["red", "blue"] and found.expected == 2
    assert [img.shape for img in found.images] == [(1, 3, 36, 40)] * 2
    assert found.images[0][0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_given_images_replace_retrieval(degradation, tmp_path) -> None:
    paths = [str(save_image(torch.rand(1, 3, 40, 40), tmp_path / f"{i}.png")) for i in range(2)]
    found = collect_images("knn", degradation, FakeRetriever(), paths)
    assert found.ids == paths and found.expected is None
    assert [img.shape for img in found.images] == [(1, 3, 40, 40)] * 2


def test_knn_without_retrieval_explains_what_to_select(degradation) -> None:
    with pytest.raises(AdaptationImageError, match="retrieval=knn.*adaptation.images"):
        collect_images("knn", degradation, NoRetrieval(), None)
    with pytest.raises(ValueError, match="unknown adaptation mode 'neighbours'"):
        collect_images("neighbours", degradation, None, None)


def test_training_runs_on_the_run_device_only() -> None:
    assert trainer_placement(torch.device("cpu")) == {"accelerator": "cpu", "devices": 1}
    assert trainer_placement(torch.device("cuda")) == {"accelerator": "gpu", "devices": [0]}
    assert trainer_placement(torch.device("cuda:1")) == {"accelerator": "gpu", "devices": [1]}


@pytest.mark.parametrize("merge", [False, True])
def test_adapt_saves_the_adapter_and_reloading_it_reproduces_the_reconstruction(
    degradation, schedule, random_lpips, tmp_path, merge
) -> None:
    """With merge, the adapter is saved before the merge and the reload matches to float tolerance."""
    settings = OmegaConf.create({
        "lora": {"rank": 4, "alpha": 8, "targets": "conv2d", "dropout": 0.0}, "lr": 1e-3, "seed": 0,
        "crop_size": 32, "batch_size": 2, "iterations": 3, "small_images": "upscale", "save": "adapter.safetensors",
        "merge": merge, "reconstruct_every_n_steps": None, "log_every_n_steps": 10, "progress": False,
        "gradient_checkpointing": False,
    })  # fmt: skip
    metrics = MetricSuite({"psnr": PSNR()})

    def parts():
        denoiser = UNetDenoiser(random_adm(TINY_ADM, seed=0))
        return denoiser, ADIRGuidedSampler(denoiser, schedule, num_steps=3, progress=False)

    denoiser, sampler = parts()
    objective = GDObjective(denoiser, schedule, perceptual=random_lpips)
    images = collect_images("self", degradation, None, None)
    result = adapt(settings, objective, images, degradation, sampler, metrics, None, tmp_path, "adm_tiny", "sr4")
    assert (tmp_path / "grid.png").is_file()

    reloaded, reloaded_sampler = parts()
    metadata = load_adapter(reloaded.unet, tmp_path / "adapter.safetensors", base_model="adm_tiny")
    assert metadata.image_ids == (SELF_IMAGE_ID,) and metadata.task == "sr4" and metadata.lora["rank"] == 4
    again = restore(degradation, reloaded_sampler, metrics).estimate
    unadapted = restore(degradation, parts()[1], metrics).estimate
    if merge:
        torch.testing.assert_close(again, result.estimate, rtol=0, atol=1e-3)
    else:
        assert torch.equal(again, result.estimate)
    assert (unadapted - result.estimate).abs().max() > 1e-2
