"""Denoising: A is the identity, only the measurement noise degrades the image."""

from __future__ import annotations

import torch

from adir_exp.operators.base import LinearOperator


class Identity(LinearOperator):
    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        return self._check_image(image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def A_pinv(self, y: torch.Tensor, **_: object) -> torch.Tensor:
        return self.A_adjoint(y)
