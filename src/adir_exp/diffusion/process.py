"""The reverse process p(x_{t−1} | x_t) of a (possibly respaced) DDPM: mean and variance from a model's output.

Follows guided-diffusion: respacing keeps a subset of timesteps and recomputes β from ᾱ so that the visited
marginals are unchanged; a learned-range model outputs v ∈ [−1, 1] per pixel and
log Σ = v'·log β_t + (1 − v')·log β̃_t with v' = (v + 1)/2; the mean is the posterior mean q(x_{t−1} | x_t, x̂0)
with x̂0 recovered from ε (optionally clipped to [−1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from adir_exp.diffusion.schedule import NoiseSchedule, space_timesteps

VarianceType = Literal["learned_range", "fixed_small", "fixed_large"]


@dataclass
class ReverseStep:
    """Moments of p(x_{t−1} | x_t) at one step, plus the model's estimates they came from."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor
    pred_x0: torch.Tensor
    eps: torch.Tensor


def _at(values: torch.Tensor, index: int, like: torch.Tensor) -> torch.Tensor:
    """values[index] as a float scalar tensor on ``like``'s device and dtype."""
    return values[index].to(device=like.device, dtype=like.dtype)


class GaussianDiffusion:
    """A respaced reverse process; index i = 0 … N−1 counts sampler steps, ``timesteps[i]`` is the model's t."""

    def __init__(self, schedule: NoiseSchedule, num_steps: int | str | None = None):
        self.schedule = schedule
        use = space_timesteps(schedule.num_train_timesteps, num_steps)
        base = schedule.alphas_cumprod
        self.timesteps = torch.tensor(use, dtype=torch.long)
        self.alphas_cumprod = base[self.timesteps]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.alphas_cumprod_prev = prev
        self.betas = 1.0 - self.alphas_cumprod / prev
        self.posterior_variance = self.betas * (1.0 - prev) / (1.0 - self.alphas_cumprod)
        # β̃_0 = 0: guided-diffusion clips the log by reusing β̃_1 at the first step.
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        self.posterior_mean_coef1 = self.betas * prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - prev) * (1.0 - self.betas).sqrt() / (1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = (1.0 / self.alphas_cumprod).sqrt()
        self.sqrt_recipm1_alphas_cumprod = (1.0 / self.alphas_cumprod - 1.0).sqrt()

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def model_timestep(self, index: int, batch: int, device: torch.device) -> torch.Tensor:
        """The original-schedule t a model must be called with at sampler step ``index``."""
        return self.timesteps[index].to(device).expand(batch)

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, index: int) -> torch.Tensor:
        return _at(self.sqrt_recip_alphas_cumprod, index, x_t) * x_t - _at(self.sqrt_recipm1_alphas_cumprod, index, x_t) * eps

    def variance(
        self, index: int, like: torch.Tensor, variance_type: VarianceType, variance_values: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(Σ, log Σ) at step ``index`` for a model of ``variance_type``."""
        if variance_type == "learned_range":
            if variance_values is None:
                raise ValueError("a learned-range model must output the variance interpolation values")
            min_log = _at(self.posterior_log_variance_clipped, index, like)
            max_log = _at(torch.log(self.betas), index, like)
            frac = (variance_values + 1.0) / 2.0
            log_variance = frac * max_log + (1.0 - frac) * min_log
            return log_variance.exp(), log_variance
        if variance_type == "fixed_small":
            log_variance = _at(self.posterior_log_variance_clipped, index, like).expand_as(like)
            return _at(self.posterior_variance, index, like).expand_as(like), log_variance
        if variance_type == "fixed_large":
            # guided-diffusion: β_t, except β̃_1 at the first step for a better-behaved log-likelihood term.
            large = torch.cat([self.posterior_variance[1:2], self.betas[1:]])
            value = _at(large, index, like).expand_as(like)
            return value, value.log()
        raise ValueError(f"unknown variance type {variance_type!r}")

    def reverse_step(
        self,
        x_t: torch.Tensor,
        index: int,
        eps: torch.Tensor,
        variance_type: VarianceType,
        variance_values: torch.Tensor | None = None,
        clip_denoised: bool = True,
    ) -> ReverseStep:
        """Moments of p(x_{t−1} | x_t) given the model's ε (and variance values for learned-range models)."""
        pred_x0 = self.predict_x0(x_t, eps, index)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        mean = _at(self.posterior_mean_coef1, index, x_t) * pred_x0 + _at(self.posterior_mean_coef2, index, x_t) * x_t
        variance, log_variance = self.variance(index, x_t, variance_type, variance_values)
        return ReverseStep(mean=mean, variance=variance, log_variance=log_variance, pred_x0=pred_x0, eps=eps)
