"""Pixel-space ε-models (OpenAI's ADM via the converter, the embedded prior, any diffusers ``UNet2DModel``
directory): eq. 17 guided sampling with a configured sampler, adapted with the DDPM ε-loss (+ LPIPS)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models.denoiser import Denoiser, UNetDenoiser
from adir_exp.models.execution import ExecutedDenoiser, Precision, check_precision
from adir_exp.operators import Physics
from adir_exp.priors.base import Prior, PriorConfigError, SamplerFactory
from adir_exp.samplers import Reconstructor

ObjectiveFactory = Callable[..., AdaptationObjective]  # e.g. partial(GDObjective, lpips_weight=0.1)


class PixelPrior(Prior):
    """A denoiser ε_θ(x_t, t) on images in [−1, 1] with its training ``schedule``.

    ``objective`` builds the adaptation loss for a denoiser and schedule; ``image_size`` defaults to the
    network's ``sample_size``. The network is fully convolutional, so it also runs at other sizes.
    ``precision``, ``channels_last`` and ``compile`` say how the network runs while sampling
    (:mod:`adir_exp.models.execution`: the reverse step and the guidance stay fp32 under every setting).
    """

    def __init__(
        self,
        name: str,
        denoiser: Denoiser,
        schedule: NoiseSchedule,
        objective: ObjectiveFactory,
        image_size: int | None = None,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
        precision: Precision = "fp32",
        channels_last: bool = False,
        compile: bool | str = False,
    ) -> None:
        if image_size is None:
            if not isinstance(denoiser, UNetDenoiser):
                raise PriorConfigError(f"{name}: give image_size (the denoiser has no sample_size)")
            image_size = denoiser.sample_size
        super().__init__(name, image_size)
        self.denoiser = denoiser.eval()
        self.schedule = schedule
        self.make_objective = objective
        self.execution = {"precision": check_precision(precision), "channels_last": channels_last, "compile": compile}
        self.apply_adapter(adapter, merge_adapter)

    @property
    def network(self) -> nn.Module:
        return self.denoiser.unet if isinstance(self.denoiser, UNetDenoiser) else self.denoiser

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def objective(self, physics: Physics) -> AdaptationObjective:
        return self.make_objective(denoiser=self.denoiser, schedule=self.schedule)

    def reconstructor(self, physics: Physics, sampler: SamplerFactory | None = None) -> Reconstructor:
        if sampler is None:
            raise PriorConfigError(
                f"{self.name} is a pixel-space prior: it reconstructs with a sampler (method=gd, dps, adir_*); "
                f"method=sd and adir_sd_* are for Stable Diffusion models"
            )
        reference = self.execution == {"precision": "fp32", "channels_last": False, "compile": False}
        denoiser = self.denoiser if reference else ExecutedDenoiser(self.denoiser, **self.execution)
        return sampler(denoiser=denoiser, schedule=self.schedule)

    def copy(self) -> PixelPrior:
        twin = copy.copy(self)
        twin.denoiser = copy.deepcopy(self.denoiser)
        return twin

    def to(self, device: torch.device | str) -> PixelPrior:
        self.denoiser.to(device)
        return self
