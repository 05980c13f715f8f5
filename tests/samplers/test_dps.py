"""DPS as the official code runs it: the step is the ancestral sample minus scale·∇_{x_t}‖y − A x̂0‖, scale = 2ζ,
with x̂0 clamped to [−1, 1] before the measurement (``clip_x0_for_guidance``, the default)."""

from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import GaussianPriorDenoiser
from adir_exp.operators import BicubicDownsample
from adir_exp.samplers import DPSSampler, Measurement, UnconditionalSampler

SHAPE = (2, 3, 8, 8)
INDEX = 3  # a late step of 20: x̂0 ≈ x_t, so an x_t beyond ±1 puts x̂0 outside [−1, 1] in places


@pytest.fixture
def denoiser() -> GaussianPriorDenoiser:
    return GaussianPriorDenoiser(torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.6), NoiseSchedule())


@pytest.fixture
def measurement() -> Measurement:
    operator = BicubicDownsample(2)
    return Measurement(operator.A(torch.rand(SHAPE, generator=torch.Generator().manual_seed(1)) * 2 - 1), operator)


def official_step(denoiser, measurement, x_t: torch.Tensor, scale: float, clamp: bool) -> torch.Tensor:
    """The official ``PosteriorSampling.conditioning`` after ``p_sample``, written out with autograd."""
    unconditional = UnconditionalSampler(denoiser, NoiseSchedule(), num_steps=20, progress=False)
    prev = unconditional.step(x_t, INDEX, None, torch.Generator().manual_seed(0)).prev_sample
    x = x_t.clone().requires_grad_(True)
    process = unconditional.process
    x0_hat = process.predict_x0(x, denoiser(x, process.model_timestep(INDEX, x.shape[0], x.device)).eps, INDEX)
    if clamp:
        x0_hat = torch.clamp(x0_hat, -1, 1)
    norm = torch.linalg.norm(measurement.y - measurement.operator.A(x0_hat))
    (norm_grad,) = torch.autograd.grad(norm, x)
    return prev - scale * norm_grad


@pytest.mark.parametrize("clamp", [True, False])
def test_step_is_the_official_update_with_scale_twice_zeta(denoiser, measurement, clamp) -> None:
    x_t = 1.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    dps = DPSSampler(denoiser, NoiseSchedule(), num_steps=20, step_size=0.15, clip_x0_for_guidance=clamp,
                     progress=False)
    step = dps.step(x_t, INDEX, measurement, torch.Generator().manual_seed(0)).prev_sample
    torch.testing.assert_close(step, official_step(denoiser, measurement, x_t, scale=0.3, clamp=clamp))


def test_clamped_guidance_vanishes_where_x0_leaves_the_range(denoiser, measurement) -> None:
    """This prior's ε acts pixel by pixel, so the clamp's zero gradient shows up pixel by pixel."""
    x_t = 1.5 * torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    dps = DPSSampler(denoiser, NoiseSchedule(), num_steps=20, progress=False)
    guided = dps.step(x_t, INDEX, measurement, torch.Generator().manual_seed(0)).prev_sample
    unconditional = UnconditionalSampler(denoiser, NoiseSchedule(), num_steps=20, progress=False)
    unguided = unconditional.step(x_t, INDEX, None, torch.Generator().manual_seed(0)).prev_sample
    t = dps.process.model_timestep(INDEX, x_t.shape[0], x_t.device)
    outside = dps.process.predict_x0(x_t, denoiser(x_t, t).eps, INDEX).abs() > 1
    assert outside.any() and (~outside).any()
    pull = guided - unguided
    assert torch.all(pull[outside] == 0) and pull[~outside].abs().min() > 0


def test_defaults_follow_the_official_code(denoiser) -> None:
    dps = DPSSampler(denoiser, NoiseSchedule(), num_steps=20, progress=False)
    assert (dps.step_size, dps.clip_x0_for_guidance) == (0.15, True)  # official scale 0.3 for SR and deblurring
