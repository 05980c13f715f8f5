"""The sampler step API shared by unconditional, ADIR-guided and DPS sampling.

Like a diffusers scheduler, a sampler exposes the steps it visits and a ``step`` that maps x_t to x_{t−1};
``sample`` runs the loop with seeding, a progress bar and a check that stops at the first non-finite value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm.auto import tqdm

from adir_exp.diffusion import GaussianDiffusion, NoiseSchedule
from adir_exp.models.denoiser import Denoiser
from adir_exp.operators.base import LinearOperator


class NonFiniteSampleError(FloatingPointError):
    """The sample became NaN/inf; the message names the step."""


@dataclass
class Measurement:
    """What a conditional sampler reconstructs from: y = A x + e, e ~ N(0, noise_std² I).

    ``noise_std`` is on the model's [−1, 1] scale (σ = 10 on 0–255 is 2·10/255); samplers that model the noise
    (DDRM) read it, eq. 17 guidance does not.
    """

    y: torch.Tensor
    operator: LinearOperator
    noise_std: float = 0.0


class Reconstructor(Protocol):
    """Anything that reconstructs x (model range [−1, 1]) from a measurement, like :meth:`Sampler.sample`: what a
    prior hands to the methods and to adaptation (Stable Diffusion's pipelines are reconstructors too)."""

    def sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor: ...


@dataclass
class StepOutput:
    prev_sample: torch.Tensor
    pred_x0: torch.Tensor


class Sampler(ABC):
    """Ancestral sampling of a (respaced) DDPM; subclasses change how x_{t−1} is drawn."""

    needs_measurement = False

    def __init__(
        self,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        num_steps: int | str | None = None,
        clip_denoised: bool = True,
        progress: bool = True,
    ):
        self.denoiser = denoiser
        self.process = GaussianDiffusion(schedule, num_steps)
        self.clip_denoised = clip_denoised
        self.progress = progress

    @property
    def indices(self) -> list[int]:
        """Sampler step indices in the order they are visited (N−1 … 0)."""
        return list(reversed(range(self.process.num_steps)))

    def noise_like(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    def reverse_moments(self, x_t: torch.Tensor, index: int):
        """Call the network at step ``index`` and return the moments of p(x_{t−1} | x_t)."""
        t = self.process.model_timestep(index, x_t.shape[0], x_t.device)
        out = self.denoiser(x_t, t)
        return self.process.reverse_step(
            x_t, index, out.eps, self.denoiser.variance_type, out.variance_values, self.clip_denoised
        )

    def ancestral(self, mean: torch.Tensor, log_variance: torch.Tensor, index: int, generator) -> torch.Tensor:
        """mean + Σ^{1/2} z, without noise at the last step (as guided-diffusion)."""
        if index == 0:
            return mean
        return mean + (0.5 * log_variance).exp() * self.noise_like(mean, generator)

    @abstractmethod
    def step(
        self, x_t: torch.Tensor, index: int, measurement: Measurement | None, generator: torch.Generator | None
    ) -> StepOutput:
        """Draw x_{t−1} given x_t at sampler step ``index``."""

    def sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        x_T: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run the whole reverse chain from x_T ~ N(0, I) (or the given ``x_T``) and return x_0."""
        if self.needs_measurement and measurement is None:
            raise ValueError(f"{type(self).__name__} needs a measurement (y and its operator)")
        if measurement is not None:
            measurement.operator.check_measurement(measurement.y, tuple(shape))
        x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=device)
        steps = tqdm(self.indices, desc=f"sampling ({type(self).__name__})", unit="step", disable=not self.progress,
                     leave=False, position=1, dynamic_ncols=True)
        for index in steps:
            x = self.step(x, index, measurement, generator).prev_sample
            if not torch.isfinite(x).all():
                t = int(self.process.timesteps[index])
                raise NonFiniteSampleError(
                    f"{type(self).__name__}: non-finite values at sampler step {self.process.num_steps - index} "
                    f"of {self.process.num_steps} (index {index}, model timestep t={t})"
                )
        return x
