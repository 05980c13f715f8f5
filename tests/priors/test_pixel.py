"""Pixel priors: a diffusers UNet directory as a prior (the "add a prior" example of docs/architecture.md), copies
that adapt independently, weight fingerprints, and the refusals that name what to select instead."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from diffusers import UNet2DModel

from adir_exp.adaptation import GDObjective
from adir_exp.adaptation.lora import add_lora
from adir_exp.cli.config import CONF_DIR
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, UNetDirectoryError, load_unet
from adir_exp.operators import BicubicDownsample, GaussianNoise, Physics
from adir_exp.priors import PixelPrior, PriorConfigError
from adir_exp.problem import measure
from adir_exp.samplers import ADIRGuidedSampler
from tests.cli.helpers import compose_app


@pytest.fixture
def unet_dir(tmp_path):
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8)  # fmt: skip
    unet.save_pretrained(tmp_path / "unet")
    return tmp_path / "unet"


def test_a_diffusers_directory_is_a_prior_through_its_yaml(unet_dir, tmp_path) -> None:
    from hydra.utils import instantiate

    cfg = compose_app("run", ["model=diffusers_unet", f"model.denoiser.unet.path={unet_dir}", "model.name=my_ddpm",
                              "model.objective.lpips_weight=0"], tmp_path)  # fmt: skip
    prior = instantiate(cfg.model)
    assert isinstance(prior, PixelPrior) and prior.name == "my_ddpm" and prior.image_size == 16
    assert prior.denoiser.variance_type == "fixed_small"
    physics = Physics(BicubicDownsample(4), GaussianNoise(0.0))
    problem = measure("x", torch.rand(1, 3, 16, 16), physics, 0, torch.device("cpu"))
    sampler = partial(ADIRGuidedSampler, num_steps=3, progress=False)
    x = prior.reconstructor(physics, sampler).sample(problem.image_shape, problem.measurement, problem.generator())
    assert x.shape == (1, 3, 16, 16) and torch.isfinite(x).all()
    assert isinstance(prior.objective(physics), GDObjective)


def test_a_directory_without_a_unet_is_named(tmp_path) -> None:
    with pytest.raises(UNetDirectoryError, match=str(tmp_path)):
        load_unet(tmp_path)


def test_copies_adapt_without_touching_the_original_and_change_the_fingerprint(unet_dir) -> None:
    prior = PixelPrior("p", UNetDenoiser(load_unet(unet_dir)), NoiseSchedule(), partial(GDObjective, lpips_weight=0))
    fingerprint = prior.fingerprint()
    twin = prior.copy()
    add_lora(twin.network, rank=2, targets="conv2d")
    for parameter in twin.network.parameters():
        torch.nn.init.normal_(parameter)
    assert twin.fingerprint() != fingerprint and prior.fingerprint() == fingerprint
    assert not any("lora_" in name for name, _ in prior.network.named_parameters())


def test_a_pixel_prior_needs_a_sampler() -> None:
    prior = PixelPrior("p", UNetDenoiser(UNet2DModel(sample_size=8, block_out_channels=(32, 32), norm_num_groups=8,
                                                     down_block_types=("DownBlock2D", "DownBlock2D"),
                                                     up_block_types=("UpBlock2D", "UpBlock2D"))),
                       NoiseSchedule(), partial(GDObjective, lpips_weight=0))  # fmt: skip
    with pytest.raises(PriorConfigError, match="method=sd and adir_sd_"):
        prior.reconstructor(Physics(BicubicDownsample(4), GaussianNoise(0.0)), None)


def test_every_model_config_names_a_prior_class() -> None:
    from omegaconf import OmegaConf

    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        assert OmegaConf.load(path)._target_.startswith("adir_exp.priors."), path.name


def test_execution_options_wrap_the_denoiser_for_sampling_and_the_default_is_the_reference_path(unet_dir) -> None:
    from adir_exp.models.execution import ExecutedDenoiser

    physics = Physics(BicubicDownsample(4), GaussianNoise(0.0))
    sampler = partial(ADIRGuidedSampler, num_steps=2, progress=False)
    plain = PixelPrior("p", UNetDenoiser(load_unet(unet_dir)), NoiseSchedule(), partial(GDObjective, lpips_weight=0))
    assert type(plain.reconstructor(physics, sampler).denoiser) is UNetDenoiser
    fast = PixelPrior("p", UNetDenoiser(load_unet(unet_dir)), NoiseSchedule(), partial(GDObjective, lpips_weight=0),
                      precision="bf16", channels_last=True)  # fmt: skip
    denoiser = fast.reconstructor(physics, sampler).denoiser
    assert isinstance(denoiser, ExecutedDenoiser) and denoiser.precision == "bf16"
    problem = measure("x", torch.rand(1, 3, 16, 16), physics, 0, torch.device("cpu"))
    x = fast.reconstructor(physics, sampler).sample(problem.image_shape, problem.measurement, problem.generator())
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
