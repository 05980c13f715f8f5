from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import GaussianDiffusion, NoiseSchedule, space_timesteps


def test_linear_schedule_matches_adm() -> None:
    schedule = NoiseSchedule()
    assert schedule.betas[0] == pytest.approx(1e-4)
    assert schedule.betas[-1] == pytest.approx(0.02)
    assert torch.allclose(schedule.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))


@pytest.mark.parametrize("count", [1000, 250, 100, 25])
def test_respacing_keeps_ends_and_count(count) -> None:
    steps = space_timesteps(1000, count)
    assert len(steps) == count and steps[0] == 0 and steps[-1] == 999
    assert steps == sorted(set(steps))


def test_section_and_ddim_respacing() -> None:
    assert space_timesteps(100, "10,10") == [0, 5, 11, 16, 22, 27, 33, 38, 44, 49, 50, 55, 61, 66, 72, 77, 83, 88, 94, 99]  # k·49/9 rounded, per section
    assert space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    with pytest.raises(ValueError):
        space_timesteps(10, "20")


def test_respaced_marginals_are_unchanged() -> None:
    schedule = NoiseSchedule()
    process = GaussianDiffusion(schedule, 50)
    assert torch.allclose(process.alphas_cumprod, schedule.alphas_cumprod[process.timesteps])
    assert torch.allclose(torch.cumprod(1 - process.betas, 0), process.alphas_cumprod)


def test_learned_range_variance_interpolates_beta_and_beta_tilde() -> None:
    process = GaussianDiffusion(NoiseSchedule(), 100)
    like = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    i = 40
    upper, _ = process.variance(i, like, "learned_range", torch.ones_like(like))
    lower, _ = process.variance(i, like, "learned_range", -torch.ones_like(like))
    middle, log_mid = process.variance(i, like, "learned_range", torch.zeros_like(like))
    assert torch.allclose(upper, process.betas[i].expand_as(like))
    assert torch.allclose(lower, process.posterior_variance[i].expand_as(like))
    assert torch.allclose(log_mid, 0.5 * (process.betas[i].log() + process.posterior_variance[i].log()).expand_as(like))


def test_posterior_mean_from_true_noise_is_the_q_posterior() -> None:
    """With the true ε, x̂0 = x0 and the mean equals the closed form of q(x_{t−1} | x_t, x0)."""
    process = GaussianDiffusion(NoiseSchedule(), 1000)
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 2 - 1
    eps = torch.randn_like(x0)
    i = 500
    x_t = process.q_sample(x0, i, eps)
    step = process.reverse_step(x_t, i, eps, "fixed_small", clip_denoised=False)
    abar, abar_prev, beta = process.alphas_cumprod[i], process.alphas_cumprod_prev[i], process.betas[i]
    expected = (abar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar_prev) * x_t) / (1 - abar)
    assert torch.allclose(step.pred_x0, x0)
    assert torch.allclose(step.mean, expected)


def test_last_step_mean_is_the_clean_estimate() -> None:
    process = GaussianDiffusion(NoiseSchedule(), 10)
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    step = process.reverse_step(x, 0, torch.zeros_like(x), "fixed_large", clip_denoised=False)
    assert torch.allclose(step.mean, step.pred_x0)
