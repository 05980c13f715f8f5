"""ADIR guided sampling (the paper's Algorithm 1, eq. 17): classifier-guidance-style, no back-propagation."""

from __future__ import annotations

from typing import Literal

import torch

from adir_exp.samplers.base import Measurement, Sampler, StepOutput


class ADIRGuidedSampler(Sampler):
    """x_{t−1} ~ N(μ + s·Σ·g, Σ), g = −2 Aᵀ(A μ − y_t), y_t = √ᾱ·y + √(1−ᾱ)·A ε_θ(x_t, t).

    The guidance is the gradient of −‖A x − y_t‖² at x = μ, in closed form: one A and one Aᵀ per step, no
    gradient through the network, so a guided step costs the same as an unguided one.

    Which ᾱ: μ is the mean of x_{t−1}, whose noise level is ᾱ_{t−1}; y_t is the measurement carried to that
    same noise level (A x_{t−1} ≈ √ᾱ_{t−1} A x0 + √(1−ᾱ_{t−1}) A ε), so ``alpha_bar="previous"`` (default) uses
    ᾱ_{t−1}, which also makes the last step compare A μ with y itself. This is also the faithful reading of the
    paper: eq. 8 indexes the step as x_t given x_{t+1}, so its ᾱ_t is the ᾱ of the step's output, i.e. our
    ᾱ_{t−1}. ``"current"`` uses the ᾱ of the step's input; with 1000 steps the two differ by one step.
    """

    needs_measurement = True

    def __init__(self, *args, guidance_scale: float = 10.0, alpha_bar: Literal["previous", "current"] = "previous", **kwargs):
        super().__init__(*args, **kwargs)
        if alpha_bar not in ("previous", "current"):
            raise ValueError(f"alpha_bar must be 'previous' or 'current', got {alpha_bar!r}")
        self.guidance_scale = guidance_scale
        self.alpha_bar = alpha_bar

    def noisy_measurement(self, measurement: Measurement, eps: torch.Tensor, index: int) -> torch.Tensor:
        """y_t = √ᾱ·y + √(1−ᾱ)·A ε_θ at the chosen noise level."""
        table = self.process.alphas_cumprod_prev if self.alpha_bar == "previous" else self.process.alphas_cumprod
        abar = table[index].to(device=eps.device, dtype=eps.dtype)
        return abar.sqrt() * measurement.y + (1.0 - abar).sqrt() * measurement.operator.A(eps)

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, index: int, measurement: Measurement | None, generator) -> StepOutput:
        moments = self.reverse_moments(x_t, index)
        operator = measurement.operator
        y_t = self.noisy_measurement(measurement, moments.eps, index)
        guidance = -2.0 * operator.A_adjoint(operator.A(moments.mean) - y_t)
        mean = moments.mean + self.guidance_scale * moments.variance * guidance
        return StepOutput(self.ancestral(mean, moments.log_variance, index, generator), moments.pred_x0)
