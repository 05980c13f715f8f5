"""Tiny, randomly initialised ADM denoisers (the real classes) and inputs for the adaptation tests.

The tests run single-threaded: these models are so small that on a shared CPU, two threads spinning against
each other's load cost several times more than they gain.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import lpips
import pytest
import torch
from torch import nn

from adir_exp.data.images import ASSET_IMAGE, load_image, resize_short_side
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm

# ADM structure (resblock up/down, scale-shift norm, learned variance, one attention level) at 32 px.
TINY_ADM = {
    "image_size": 32,
    "num_channels": 32,
    "channel_mult": "1,2",
    "num_res_blocks": 1,
    "attention_resolutions": "16",
    "num_head_channels": 32,
    "learn_sigma": True,
    "resblock_updown": True,
    "use_scale_shift_norm": True,
}


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def denoiser() -> UNetDenoiser:
    return UNetDenoiser(random_adm(TINY_ADM, seed=0))


@pytest.fixture
def schedule() -> NoiseSchedule:
    return NoiseSchedule()


@pytest.fixture(scope="session")
def random_lpips() -> nn.Module:
    """lpips' AlexNet LPIPS with its real linear layers (from the wheel) on a randomly initialised backbone: the
    ImageNet backbone is a provisioned file these unit tests do not need (the CLI test provisions it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()


@pytest.fixture(scope="session")
def photo() -> torch.Tensor:
    """The bundled photo at 48 px short side, (1, 3, 48, 48) in [0, 1]."""
    return resize_short_side(load_image(ASSET_IMAGE), 48)




@pytest.fixture
def tiny_prior(schedule, random_lpips):
    """The tiny ADM as a pixel prior whose adaptation loss uses the random-backbone LPIPS."""
    from functools import partial

    from adir_exp.adaptation import GDObjective
    from adir_exp.priors import PixelPrior

    return PixelPrior("adm_tiny", UNetDenoiser(random_adm(TINY_ADM, seed=0)), schedule,
                      partial(GDObjective, perceptual=random_lpips))


@pytest.fixture
def sr_problem(photo):
    """×4 SR of a 32×32 crop of the bundled photo, noiseless, seed 0, on the CPU."""
    from adir_exp.operators import BicubicDownsample, GaussianNoise, Physics
    from adir_exp.problem import measure

    physics = Physics(BicubicDownsample(4), GaussianNoise(0.0))
    return measure("photo", photo[..., :32, :32], physics, seed=0, device=torch.device("cpu"))
