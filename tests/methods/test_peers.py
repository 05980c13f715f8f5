"""deepinv's DPS, DDRM and DiffPIR run on our prior and operators, and deepinv's DDRM agrees with ours where both
are exact.

The agreement case: the analytic Gaussian prior (tests/samplers/analytic_prior.py, exact ε*) and noise-free 50 %
inpainting, where the mask is diagonal in the prior's basis, so DDRM's per-coefficient rules are exact and the mean
of many samples is the posterior mean (ours: 0.03 of the prior-to-posterior distance away, tests/samplers). Both
run at the same 20 noise levels, η = 0.85, η_b = 1, no clipping. Measured with 512 samples: deepinv 0.022 from the
exact mean, 0.009 from ours. Their spread differs by 1/√2: deepinv's DDRM draws its noise as σ·z/√2 while telling
the denoiser σ (sample std 0.061 vs our 0.086, ratio 0.707), documented in docs/baselines.md and checked here so a
change in deepinv shows.
"""

from __future__ import annotations

import math

import pytest
import torch

deepinv = pytest.importorskip("deepinv")

from hydra.utils import instantiate

from adir_exp.diffusion import GaussianDiffusion, space_timesteps
from adir_exp.methods import DeepinvReconstruction
from adir_exp.methods.peers import (
    deepinv_physics,
    make_prior_denoiser,
    prior_noise_levels,
    vp_times,
)
from adir_exp.operators import (
    BicubicDownsample,
    BoxBlur,
    GaussianNoise,
    Inpainting,
    Physics,
)
from adir_exp.operators.convolution import StridedCorrelation
from adir_exp.problem import measure
from adir_exp.samplers import DDRMSampler, Measurement
from tests.cli.helpers import compose_app
from tests.samplers.analytic_prior import SHAPE, exact_posterior_mean, make_prior

SAMPLES = 512


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    return instantiate(compose_app("run", ["model=adm_tiny"], tmp_path_factory.mktemp("cfg")).model)


@pytest.mark.parametrize("algorithm", ["dps", "ddrm", "diffpir"])
@pytest.mark.parametrize("task", ["sr4", "deblur"])
def test_each_peer_sampler_runs_on_the_tiny_adm(tiny_prior, algorithm, task) -> None:
    tasks = {"sr4": Physics(BicubicDownsample(4), GaussianNoise(0.0)), "deblur": Physics(BoxBlur(5), GaussianNoise(10))}
    physics = tasks[task]
    method = DeepinvReconstruction(algorithm, num_steps=4, noise_floor=1e-3 if algorithm == "diffpir" else 0.0)
    method.check(tiny_prior, physics)
    problem = measure("tile", torch.rand(1, 3, 32, 32), physics, 0, torch.device("cpu"))
    image = method.reconstruct(problem, tiny_prior).image
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    assert torch.equal(method.reconstruct(problem, tiny_prior).image, image)  # seeded by the problem


def test_the_peer_denoiser_is_our_x0_estimate_at_our_noise_levels() -> None:
    mean, std, truth, schedule, denoiser, _ = make_prior()
    process = GaussianDiffusion(schedule, 20)
    wrapped = make_prior_denoiser(denoiser, schedule)
    x_t = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    for index in (0, 7, 19):
        t = int(process.timesteps[index])
        sigma01 = float(prior_noise_levels(schedule)[t]) / 2.0
        abar = float(schedule.alphas_cumprod[t])
        ours = process.predict_x0(x_t, denoiser(x_t, process.model_timestep(index, 2, x_t.device)).eps, index)
        theirs = 2.0 * wrapped(x_t / math.sqrt(abar) / 2.0 + 0.5, sigma01) - 1.0  # x_t/√ᾱ on [0, 1]
        assert torch.allclose(theirs, ours, atol=1e-4), index


def test_deepinv_vp_times_visit_the_priors_respaced_levels() -> None:
    schedule = make_prior()[3]
    timesteps = space_timesteps(1000, 50)
    sde = deepinv.sampling.VariancePreservingDiffusion()
    times = vp_times(schedule, timesteps)
    expected = prior_noise_levels(schedule)[sorted(timesteps, reverse=True)]
    assert torch.allclose(sde.sigma_t(times[:-1]), expected, rtol=1e-6) and times[-1] == 0


def test_deepinv_physics_is_our_operator_on_unit_range_images() -> None:
    operator, x = BicubicDownsample(2), torch.rand(2, *SHAPE)
    physics = deepinv_physics(Physics(operator, GaussianNoise(10)), (2, *SHAPE))
    y = operator.A(x)
    assert torch.allclose(physics.A(x), y, atol=1e-6)
    assert torch.allclose(physics.A_adjoint(y), operator.A_adjoint(y), atol=1e-6)
    assert float(physics.noise_model.sigma) == pytest.approx(10 / 255)


def test_deepinv_ddrm_agrees_with_ours_where_both_are_exact() -> None:
    mean, std, truth, schedule, denoiser, _ = make_prior()
    operator = Inpainting(mask="random", fraction=0.5, seed=1)
    y = operator.A(truth[None])
    target = exact_posterior_mean(operator, y[0], mean, std, 1e-4)
    batch = Measurement(y.expand(SAMPLES, -1, -1, -1).contiguous(), operator, 0.0)
    ours = DDRMSampler(denoiser, schedule, progress=False).sample(
        (SAMPLES, *SHAPE), batch, generator=torch.Generator().manual_seed(1)
    )
    levels = prior_noise_levels(schedule)[sorted(space_timesteps(1000, 20), reverse=True)] / 2.0
    peer = deepinv.sampling.DDRM(make_prior_denoiser(denoiser, schedule), sigmas=levels.tolist(), eta=0.85, etab=1.0)
    physics = deepinv_physics(Physics(operator, GaussianNoise(0.0)), (SAMPLES, *SHAPE))
    torch.manual_seed(1)
    theirs = 2.0 * peer((batch.y + operator.A(torch.ones(SAMPLES, *SHAPE))) / 2.0, physics) - 1.0
    gap = (mean - target).norm()
    assert (theirs.mean(0) - target).norm() / gap < 0.1
    assert (theirs.mean(0) - ours.mean(0)).norm() / gap < 0.05
    spread = float(theirs.std(0).mean() / ours.std(0).mean())
    assert 0.65 < spread < 0.76, spread  # 1/√2: deepinv's noise σz/√2 (docs/baselines.md)


def test_non_pixel_priors_unknown_algorithms_and_ddrm_without_svd_are_refused(tiny_prior) -> None:
    with pytest.raises(ValueError, match="pixel-space"):
        DeepinvReconstruction("dps").check(object(), Physics(BoxBlur(5), GaussianNoise(0.0)))
    with pytest.raises(ValueError, match="must be dps, ddrm or diffpir"):
        DeepinvReconstruction("pigdm")
    blur = StridedCorrelation(torch.tensor([[0.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.1, 0.0]]))  # not separable
    with pytest.raises(ValueError, match="needs an operator with an SVD"):
        DeepinvReconstruction("ddrm").check(tiny_prior, Physics(blur, GaussianNoise(0.0)))
