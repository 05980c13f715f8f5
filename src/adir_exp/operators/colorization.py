"""Colorization degradation: the grey image is the channel average."""

from __future__ import annotations

import torch

from adir_exp.operators.base import LinearOperator


class Colorization(LinearOperator):
    """y = (r + g + b) / 3, one channel.

    The true adjoint spreads y/3 over the three channels; the pseudo-inverse replicates y (A A⁺ = I), which is
    what "Aᵀ replicates" means in the paper's notation up to the factor 3.
    """

    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        b, _, h, w = self._check_image(image_shape)
        return (b, 1, h, w)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1, keepdim=True)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y / self.in_channels).expand(-1, self.in_channels, -1, -1).contiguous()

    def A_pinv(self, y: torch.Tensor, **_: object) -> torch.Tensor:
        self.A_adjoint(y)  # validates the shape
        return y.expand(-1, self.in_channels, -1, -1).contiguous()
