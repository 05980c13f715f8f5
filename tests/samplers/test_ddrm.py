"""DDRM on the analytic Gaussian prior (exact ε*, see ``analytic_prior``), where the posterior mean is known.

With DDRM's defaults (20 steps, η = 0.85, η_b = 1) the mean of 512 samples is compared with the exact posterior
mean E[x|y] through ratio = ‖mean − E[x|y]‖ / ‖m − E[x|y]‖ (m the prior mean; an unguided sampler gives ≈ 1).
Measured (five sampler seeds, spread ≤ 0.005, so the Monte-Carlo error is negligible next to the bounds):

=================  =========  =========
operator           σ = 10     σ = 0
=================  =========  =========
×2 SR (bicubic)    0.23       0.22
50 % inpainting    0.26       0.03
=================  =========  =========

DDRM is not an exact posterior sampler: with 20 steps its last noisy step trusts y at the level of that step
(noisy inpainting: 0.04 with 100 steps), and for SR the prior's pixel-diagonal covariance couples the observed
and missing spectral coefficients, which DDRM's per-coefficient rules ignore (0.15 with 100 steps). Noise-free
inpainting decouples (the mask is diagonal in the prior's basis), so DDRM is then exact up to Monte-Carlo error.
Bounds: 0.35 (0.1 for noise-free inpainting).
"""

from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import DenoiserOutput, GaussianPriorDenoiser
from adir_exp.operators import (
    BicubicDownsample,
    GaussianNoise,
    Inpainting,
    SVDUnavailableError,
)
from adir_exp.operators.convolution import StridedCorrelation
from adir_exp.samplers import DDRMSampler, Measurement, UnconditionalSampler
from tests.samplers.analytic_prior import SHAPE, exact_posterior_mean

SAMPLES = 512


def operators():
    return {"sr2": BicubicDownsample(2), "inpainting": Inpainting(mask="random", fraction=0.5, seed=1)}


@pytest.mark.parametrize(
    ("name", "sigma", "tolerance"),
    [("sr2", 10, 0.35), ("sr2", 0, 0.35), ("inpainting", 10, 0.35), ("inpainting", 0, 0.1)],
    ids=["sr2-noisy", "sr2-clean", "inpainting-noisy", "inpainting-clean"],
)
def test_ddrm_mean_approaches_exact_posterior_mean(prior, name, sigma, tolerance) -> None:
    mean, std, truth, schedule, denoiser, _ = prior
    operator = operators()[name]
    noise = GaussianNoise(sigma=sigma)
    y = noise(operator.A(truth[None]), generator=torch.Generator().manual_seed(5))
    # σ → 0 limit; 1e-4 keeps the Gram matrix invertible where inpainting's y has all-zero rows.
    target = exact_posterior_mean(operator, y[0], mean, std, max(noise.std, 1e-4))
    batch = Measurement(y.expand(SAMPLES, -1, -1, -1).contiguous(), operator, noise.std)

    samples = DDRMSampler(denoiser, schedule, progress=False).sample(
        (SAMPLES, *SHAPE), batch, generator=torch.Generator().manual_seed(1)
    )
    ratio = (samples.mean(0) - target).norm() / (mean - target).norm()
    assert ratio <= tolerance, f"DDRM mean is {ratio:.3f} of the prior-to-posterior distance away"


@pytest.mark.parametrize("name", ["sr2", "inpainting"])
def test_noise_free_ddrm_reproduces_the_measurement(prior, name) -> None:
    """σ_y = 0: A x̂ = y up to the last step's denoising of noise σ_t ≈ 0.01 (measured RMSE 0.004 / 0.007)."""
    _, _, truth, schedule, denoiser, _ = prior
    operator = operators()[name]
    y = operator.A(truth[None]).expand(64, -1, -1, -1).contiguous()
    shape = tuple(y.shape[:1]) + SHAPE
    ddrm = DDRMSampler(denoiser, schedule, progress=False).sample(shape, Measurement(y, operator), torch.Generator().manual_seed(2))
    free = UnconditionalSampler(denoiser, schedule, num_steps=20, progress=False).sample(shape, generator=torch.Generator().manual_seed(2))
    misfit = float((operator.A(ddrm) - y).pow(2).mean().sqrt())
    unguided = float((operator.A(free) - y).pow(2).mean().sqrt())
    assert misfit < 0.015, misfit
    assert misfit < 0.1 * unguided, (misfit, unguided)


def test_defaults_are_ddrms() -> None:
    sampler = DDRMSampler(GaussianPriorDenoiser(torch.zeros(SHAPE), torch.ones(SHAPE), NoiseSchedule()), NoiseSchedule(), progress=False)
    assert (sampler.eta, sampler.eta_b, sampler.process.num_steps, sampler.clip_denoised) == (0.85, 1.0, 20, False)
    with pytest.raises(ValueError, match="eta"):
        DDRMSampler(sampler.denoiser, NoiseSchedule(), eta=1.5)


def test_ddim20_visits_the_official_timesteps() -> None:
    """The official DDRM: skip = 1000 // 20, seq = range(0, 1000, skip); a plain 20 respaces evenly to 999."""
    denoiser = GaussianPriorDenoiser(torch.zeros(SHAPE), torch.ones(SHAPE), NoiseSchedule())
    official = DDRMSampler(denoiser, NoiseSchedule(), num_steps="ddim20", progress=False).process.timesteps
    respaced = DDRMSampler(denoiser, NoiseSchedule(), num_steps=20, progress=False).process.timesteps
    assert official.tolist() == list(range(0, 1000, 1000 // 20))
    assert respaced.tolist() == [round(i * 999 / 19) for i in range(20)] and respaced[1] == 53


class WithVarianceHead(GaussianPriorDenoiser):
    """A learned-range model whose variance values are garbage: DDRM must only use ε."""

    variance_type = "learned_range"

    def forward(self, x_t, t):
        return DenoiserOutput(eps=super().forward(x_t, t).eps, variance_values=torch.full_like(x_t, float("nan")))


def test_variance_head_is_ignored() -> None:
    schedule = NoiseSchedule()
    denoiser = WithVarianceHead(torch.zeros(3, 8, 8), torch.full((3, 8, 8), 0.3), schedule)
    operator = BicubicDownsample(2)
    y = operator.A(torch.rand(2, 3, 8, 8))
    x = DDRMSampler(denoiser, schedule, progress=False).sample((2, 3, 8, 8), Measurement(y, operator, 0.05))
    assert torch.isfinite(x).all()


def test_operator_without_svd_is_a_clear_error() -> None:
    schedule = NoiseSchedule()
    operator = StridedCorrelation(torch.tensor([[0.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.1, 0.0]]))
    denoiser = GaussianPriorDenoiser(torch.zeros(3, 8, 8), torch.ones(3, 8, 8), schedule)
    y = operator.A(torch.rand(1, 3, 8, 8))
    with pytest.raises(SVDUnavailableError, match="no closed-form or separable SVD"):
        DDRMSampler(denoiser, schedule, progress=False).sample((1, 3, 8, 8), Measurement(y, operator))
