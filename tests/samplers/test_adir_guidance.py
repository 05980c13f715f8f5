"""ADIR's guidance directions: the true adjoint, the adjoint scaled by n/m, or the pseudo-inverse."""

from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import GaussianPriorDenoiser
from adir_exp.operators import (
    BicubicDownsample,
    BoxBlur,
    Colorization,
    Identity,
    Inpainting,
)
from adir_exp.samplers import ADIRGuidedSampler, Measurement


def sampler(guidance: str, scale: float = 10.0, steps: int = 5) -> ADIRGuidedSampler:
    schedule = NoiseSchedule()
    denoiser = GaussianPriorDenoiser(torch.zeros(3, 16, 16), torch.full((3, 16, 16), 0.3), schedule)
    return ADIRGuidedSampler(denoiser, schedule, num_steps=steps, guidance_scale=scale, guidance=guidance, progress=False)


def directions(operator, residual):
    return {g: sampler(g).back_project(operator, residual) for g in ("adjoint", "scaled_adjoint", "pinv")}


def test_colorization_scaled_adjoint_replicates_the_grey_residual() -> None:
    residual = torch.randn(2, 1, 16, 16)
    d = directions(Colorization(), residual)
    torch.testing.assert_close(d["scaled_adjoint"], residual.expand(-1, 3, -1, -1))
    torch.testing.assert_close(d["pinv"], d["scaled_adjoint"])
    torch.testing.assert_close(d["adjoint"], d["scaled_adjoint"] / 3)


def test_super_resolution_scaled_adjoint_is_factor_squared_times_the_adjoint() -> None:
    residual = torch.randn(2, 3, 4, 4)
    d = directions(BicubicDownsample(4), residual)
    torch.testing.assert_close(d["scaled_adjoint"], 16 * d["adjoint"])
    operator = BicubicDownsample(4)
    torch.testing.assert_close(operator.A(d["pinv"]), residual, atol=1e-4, rtol=0)


@pytest.mark.parametrize("operator", [BoxBlur(5), Inpainting(mask="random", fraction=0.5), Identity()], ids=["blur", "inpainting", "identity"])
def test_same_size_operators_need_no_scaling(operator) -> None:
    residual = torch.randn(2, 3, 16, 16)
    d = directions(operator, residual)
    torch.testing.assert_close(d["scaled_adjoint"], d["adjoint"])
    if not isinstance(operator, BoxBlur):  # an orthogonal projection: Aᵀ = A⁺
        torch.testing.assert_close(d["pinv"], d["adjoint"])


def test_scaled_adjoint_is_the_adjoint_at_a_rescaled_strength() -> None:
    operator = BicubicDownsample(2)
    measurement = Measurement(operator.A(torch.rand(2, 3, 16, 16) * 2 - 1), operator)
    plain = sampler("adjoint", scale=10.0, steps=20).sample((2, 3, 16, 16), measurement, torch.Generator().manual_seed(0))
    scaled = sampler("scaled_adjoint", scale=2.5, steps=20).sample((2, 3, 16, 16), measurement, torch.Generator().manual_seed(0))
    torch.testing.assert_close(scaled, plain, atol=1e-5, rtol=0)


def test_unknown_guidance_is_rejected() -> None:
    with pytest.raises(ValueError, match="guidance must be"):
        sampler("gradient")
