"""Colorization degradation: the grey image is the channel average."""

from __future__ import annotations

import math

import torch

from adir_exp.operators.base import LinearOperator


def channel_basis(channels: int) -> torch.Tensor:
    """An orthonormal basis of colour space (columns, float64): the grey direction 1/√C first, then Helmert's
    contrasts (1, −1, 0)/√2, (1, 1, −2)/√6, … spanning what colorization loses."""
    basis = torch.zeros(channels, channels, dtype=torch.float64)
    basis[:, 0] = 1.0 / math.sqrt(channels)
    for k in range(1, channels):
        basis[:k, k] = 1.0
        basis[k, k] = -float(k)
        basis[:, k] /= math.sqrt(k * (k + 1))
    return basis


class Colorization(LinearOperator):
    """y = (r + g + b) / 3, one channel.

    The true adjoint spreads y/3 over the three channels; the pseudo-inverse replicates y (A A⁺ = I), which is
    what "Aᵀ replicates" means in the paper's notation up to the factor 3.

    SVD, per pixel: A = (1/C)·1ᵀ = 1 · (1/√C) · (1/√C)·1ᵀ, so U = 1, the one singular value is 1/√C and V is
    ``channel_basis``: Vᵀx holds the grey coefficient in channel 0 and the colour contrasts in the others.
    """

    supports_svd = True

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

    def _V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ck,bchw->bkhw", channel_basis(self.in_channels).to(x), x)

    def _V(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ck,bkhw->bchw", channel_basis(self.in_channels).to(z), z)

    def _U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _U(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def _singular_values(self, channels: int, height: int, width: int) -> torch.Tensor:
        values = torch.zeros(channels, height, width, dtype=torch.float64)
        values[0] = 1.0 / math.sqrt(channels)
        return values
