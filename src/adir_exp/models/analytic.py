"""An exact denoiser for a Gaussian prior, so samplers can be checked against closed-form posteriors."""

from __future__ import annotations

import torch

from adir_exp.diffusion.schedule import NoiseSchedule
from adir_exp.models.denoiser import Denoiser, DenoiserOutput


class GaussianPriorDenoiser(Denoiser):
    """ε*(x_t, t) = E[ε | x_t] for x0 ~ N(m, diag(s²)).

    With x_t = √ᾱ x0 + √(1−ᾱ) ε, x_t is Gaussian and E[ε | x_t] = √(1−ᾱ)(x_t − √ᾱ m) / (ᾱ s² + 1 − ᾱ): the
    optimal ε-predictor, i.e. what a perfectly trained network would output. Differentiable, so DPS runs on it.
    """

    variance_type = "fixed_small"

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, schedule: NoiseSchedule):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.register_buffer("alphas_cumprod", schedule.alphas_cumprod.clone())
        self.in_channels = mean.shape[0]

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        abar = self.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        var = abar * self.std**2 + 1.0 - abar
        eps = (1.0 - abar).sqrt() * (x_t - abar.sqrt() * self.mean) / var
        return DenoiserOutput(eps=eps)
