"""The network interface the samplers use: ε_θ(x_t, t) and, for learned-variance models, the variance values."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from diffusers import UNet2DModel
from torch import nn

from adir_exp.diffusion.process import VarianceType


@dataclass
class DenoiserOutput:
    eps: torch.Tensor
    variance_values: torch.Tensor | None = None


class Denoiser(nn.Module, ABC):
    """Predicts ε from (x_t, t); ``variance_type`` tells the reverse process how to get Σ."""

    variance_type: VarianceType = "fixed_small"

    @abstractmethod
    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> DenoiserOutput: ...


class UNetDenoiser(Denoiser):
    """Wraps a diffusers ``UNet2DModel`` trained for ε-prediction.

    A model with twice the input channels is read as ADM's learned-range output [ε, v]; otherwise the variance
    is fixed (``fixed_variance``: ``fixed_small`` = β̃_t, ``fixed_large`` = β_t).
    """

    def __init__(self, unet: UNet2DModel, fixed_variance: VarianceType = "fixed_small"):
        super().__init__()
        self.unet = unet
        in_ch, out_ch = unet.config.in_channels, unet.config.out_channels
        if out_ch == 2 * in_ch:
            self.variance_type = "learned_range"
        elif out_ch == in_ch:
            if fixed_variance == "learned_range":
                raise ValueError("a model with as many output as input channels cannot have learned variance")
            self.variance_type = fixed_variance
        else:
            raise ValueError(f"UNet with {in_ch} input and {out_ch} output channels is neither ε nor [ε, v] prediction")
        self.in_channels = in_ch

    @property
    def sample_size(self) -> int:
        return int(self.unet.config.sample_size)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> DenoiserOutput:
        out = self.unet(x_t, t).sample
        if self.variance_type == "learned_range":
            eps, values = out.split(self.in_channels, dim=1)
            return DenoiserOutput(eps=eps, variance_values=values)
        return DenoiserOutput(eps=out)
