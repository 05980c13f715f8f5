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
    schedule = NoiseSchedule()
    process = GaussianDiffusion(schedule, 1000)
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 2 - 1
    eps = torch.randn_like(x0)
    i = 500
    x_t = schedule.add_noise(x0, eps, process.timesteps[i])
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


@pytest.mark.parametrize("num_steps", [1000, 50, "10,15,20"])
def test_unguided_fixed_small_step_equals_diffusers_ddpm_step(num_steps) -> None:
    """The hand-written reverse step is diffusers' DDPMScheduler.step for the same ε and the same noise, at every
    step of a full or respaced chain (diffusers takes the respaced timesteps as custom timesteps)."""
    from diffusers import DDPMScheduler

    process = GaussianDiffusion(NoiseSchedule(), num_steps)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                              variance_type="fixed_small", clip_sample=True, clip_sample_range=1.0)
    scheduler.set_timesteps(timesteps=process.timesteps.flip(0).tolist())
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 8, 8, generator=rng)
    for index in reversed(range(process.num_steps)):
        t = int(process.timesteps[index])
        assert t == int(scheduler.timesteps[process.num_steps - 1 - index])
        eps = torch.randn(x.shape, generator=rng)
        ours = process.reverse_step(x, index, eps, "fixed_small", clip_denoised=True)
        noise_seed = 1000 + index
        theirs = scheduler.step(eps, t, x, generator=torch.Generator().manual_seed(noise_seed)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(noise_seed))
        expected = ours.mean if index == 0 else ours.mean + ours.variance.sqrt() * noise
        torch.testing.assert_close(theirs, expected, rtol=1e-4, atol=1e-5)
        x = expected


def test_forward_noising_equals_diffusers_add_noise() -> None:
    from diffusers import DDPMScheduler

    schedule = NoiseSchedule()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    x0, eps = torch.rand(4, 3, 8, 8) * 2 - 1, torch.randn(4, 3, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    torch.testing.assert_close(schedule.add_noise(x0, eps, t), scheduler.add_noise(x0, eps, t), rtol=1e-4, atol=5e-6)
