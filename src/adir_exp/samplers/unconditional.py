"""Plain ancestral sampling from the prior."""

from __future__ import annotations

import torch

from adir_exp.samplers.base import Measurement, Sampler, StepOutput


class UnconditionalSampler(Sampler):
    """x_{t−1} ~ N(μ, Σ); ignores any measurement (the "no guidance" reference)."""

    @torch.no_grad()
    def step(self, x_t: torch.Tensor, index: int, measurement: Measurement | None, generator) -> StepOutput:
        moments = self.reverse_moments(x_t, index)
        return StepOutput(self.ancestral(moments.mean, moments.log_variance, index, generator), moments.pred_x0)
