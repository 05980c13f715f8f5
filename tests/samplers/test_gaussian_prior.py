"""ADIR guidance on an analytic Gaussian prior, where the exact posterior mean is known in closed form.

Prior x ~ N(m, diag(s²)) on 3×16×16 images, exact ε* as the model (no training error), y = A x + e, σ = 10/255
on [0, 1]. The exact posterior mean is m + S Aᵀ(A S Aᵀ + σ² I)⁻¹(y − A m).

Tolerance: ADIR's eq. 17 is an approximate posterior sampler (a Σ-scaled gradient step on ‖A μ − y_t‖², not the
exact conditional score), so its sample mean is not expected to equal the posterior mean. We require the mean of
512 guided samples to close most of the gap between the prior mean and the posterior mean:
‖mean − E[x|y]‖ ≤ 0.45·‖m − E[x|y]‖ for ×2 SR (measured 0.30) and ≤ 0.25· for 50 % random inpainting (measured
0.15). Monte-Carlo error of a 512-sample mean is about 0.1 of that gap here, so the bounds are not met by chance,
and an unguided sampler (ratio ≈ 1) or a wrong-sign/adjoint bug fails them.

Guidance directions: ``scaled_adjoint`` is the adjoint times a constant here (4 for ×2 SR, 1 for inpainting), so
it is this test at scale 10/4 (checked sample for sample in test_adir_guidance.py). ``pinv`` corrects every
measured direction at rate 1, 4–15× the adjoint's for ×2 SR (AᵀA's eigenvalues lie in [0.07, 0.25]): at s = 10
it overshoots towards y (ratio 0.66); at s = 2.5 it passes the same ×2 SR bound (measured 0.18). For inpainting
all three directions are the same (Aᵀ = A⁺ = A).
"""

from __future__ import annotations

import pytest
import torch

from adir_exp.operators import BicubicDownsample, GaussianNoise, Inpainting
from adir_exp.samplers import ADIRGuidedSampler, Measurement, UnconditionalSampler
from tests.samplers.analytic_prior import SHAPE, exact_posterior_mean

SAMPLES = 512


@pytest.mark.parametrize(
    ("operator", "tolerance"),
    [(BicubicDownsample(2), 0.45), (Inpainting(mask="random", fraction=0.5, seed=1), 0.25)],
    ids=["sr2", "inpainting"],
)
def test_guided_mean_approaches_exact_posterior_mean(prior, operator, tolerance) -> None:
    mean, std, truth, schedule, denoiser, generator = prior
    noise = GaussianNoise(sigma=10)
    y = noise(operator.A(truth[None]), generator=generator)
    target = exact_posterior_mean(operator, y[0], mean, std, noise.std)
    batch = Measurement(y.expand(SAMPLES, -1, -1, -1).contiguous(), operator)

    guided = ADIRGuidedSampler(denoiser, schedule, num_steps=250, guidance_scale=10.0, clip_denoised=False, progress=False)
    samples = guided.sample((SAMPLES, *SHAPE), batch, generator=torch.Generator().manual_seed(1))
    ratio = (samples.mean(0) - target).norm() / (mean - target).norm()
    assert ratio <= tolerance, f"guided mean is {ratio:.3f} of the prior-to-posterior distance away"


def test_pinv_guided_mean_approaches_exact_posterior_mean(prior) -> None:
    mean, std, truth, schedule, denoiser, _ = prior
    operator, noise = BicubicDownsample(2), GaussianNoise(sigma=10)
    y = noise(operator.A(truth[None]), generator=torch.Generator().manual_seed(5))
    target = exact_posterior_mean(operator, y[0], mean, std, noise.std)
    batch = Measurement(y.expand(SAMPLES, -1, -1, -1).contiguous(), operator)
    guided = ADIRGuidedSampler(
        denoiser, schedule, num_steps=250, guidance_scale=2.5, guidance="pinv", clip_denoised=False, progress=False
    )
    samples = guided.sample((SAMPLES, *SHAPE), batch, generator=torch.Generator().manual_seed(1))
    ratio = (samples.mean(0) - target).norm() / (mean - target).norm()
    assert ratio <= 0.45, f"pinv-guided mean is {ratio:.3f} of the prior-to-posterior distance away"


@pytest.mark.parametrize(
    ("operator", "scales"),
    [(BicubicDownsample(2), (10.0, 40.0)), (Inpainting(mask="random", fraction=0.5, seed=1), (3.0, 10.0))],
    ids=["sr2", "inpainting"],
)
def test_guidance_fits_the_measurement_and_more_so_with_larger_scale(prior, operator, scales) -> None:
    """Noise-free y: RMSE of A x̂ − y falls from unguided to a small to a larger guidance scale.

    It does not reach zero: each step injects √Σ noise and corrects a fraction 2·s·Σ·λ of the residual (λ an
    eigenvalue of AᵀA: 1/4 for ×2 SR, 1 for inpainting), which balances at an RMSE of about 1/(2√s) in A's range.
    The step is stable only while 2·s·Σ·λ < 2, so the usable s scales with 1/λ: s = 40 is fine for ×2 SR and
    diverges for inpainting with 250 steps (Σ up to ≈ 0.08).
    """
    mean, std, truth, schedule, denoiser, _ = prior
    y = operator.A(truth[None]).expand(64, -1, -1, -1).contiguous()
    misfits = []
    for scale in (None, *scales):
        if scale is None:
            sampler = UnconditionalSampler(denoiser, schedule, num_steps=250, progress=False)
        else:
            sampler = ADIRGuidedSampler(denoiser, schedule, num_steps=250, guidance_scale=scale, progress=False)
        samples = sampler.sample(tuple(y.shape[:1]) + SHAPE, Measurement(y, operator), generator=torch.Generator().manual_seed(2))
        misfits.append(float((operator.A(samples) - y).pow(2).mean().sqrt()))
    unguided, weak, strong = misfits
    assert unguided > weak > strong, misfits
    assert strong < 0.5 * unguided, misfits
