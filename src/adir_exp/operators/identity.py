"""Denoising: A is the identity, only the measurement noise degrades the image."""

from __future__ import annotations

import torch

from adir_exp.operators.base import LinearOperator


class Identity(LinearOperator):
    """A = I, with the trivial SVD U = V = I, Σ = 1."""

    supports_svd = True

    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        return self._check_image(image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def A_pinv(self, y: torch.Tensor, **_: object) -> torch.Tensor:
        return self.A_adjoint(y)

    def _V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _V(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def _U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _U(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def _singular_values(self, channels: int, height: int, width: int) -> torch.Tensor:
        return torch.ones(channels, height, width, dtype=torch.float64)
