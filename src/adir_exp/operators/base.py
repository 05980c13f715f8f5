"""Linear degradation operators y = A x (noise is separate, see :mod:`adir_exp.operators.noise`).

Every operator works on float tensors of shape (B, C, H, W) and offers

* ``A(x)``: the forward map,
* ``A_adjoint(y)``: its true adjoint, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ (tested for every operator),
* ``A_pinv(y)``: a (regularised) pseudo-inverse, used for initialisation and display.

The default pseudo-inverse solves (A Aᵀ + λ I) z = y by conjugate gradients and returns Aᵀ z, which is exact
for full-row-rank operators as λ → 0; operators with a closed form override it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class OperatorInputError(ValueError):
    """An image or measurement does not fit the operator."""


class LinearOperator(nn.Module, ABC):
    """Base class of the degradation operators."""

    in_channels: int = 3

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _adjoint(self, y: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        """Shape of A x for an image batch of ``image_shape`` (validates the image shape)."""

    def image_shape(self, measurement_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        """Shape of Aᵀ y for a measurement of ``measurement_shape``; the default keeps the spatial size."""
        b, _, h, w = self._check_rank(measurement_shape, "measurement")
        return (b, self.in_channels, h, w)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.measurement_shape(x.shape)
        return self._forward(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        expected = self.measurement_shape(self.image_shape(y.shape))
        if tuple(y.shape) != expected:
            raise OperatorInputError(
                f"{type(self).__name__}: measurement of shape {tuple(y.shape)} does not match the operator "
                f"(an image of shape {self.image_shape(y.shape)} gives {expected})"
            )
        return self._adjoint(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def A_pinv(self, y: torch.Tensor, damping: float = 1e-6, max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
        """Aᵀ (A Aᵀ + λ I)⁻¹ y by conjugate gradients (batched over the whole tensor)."""
        z = torch.zeros_like(y)
        r = y.clone()
        p = r.clone()
        rs = (r * r).sum()
        y_norm = (y * y).sum().sqrt().clamp_min(1e-12)
        for _ in range(max_iter):
            ap = self._forward(self._adjoint(p)) + damping * p
            alpha = rs / (p * ap).sum().clamp_min(1e-30)
            z = z + alpha * p
            r = r - alpha * ap
            rs_new = (r * r).sum()
            if rs_new.sqrt() <= tol * y_norm:
                break
            p = r + (rs_new / rs) * p
            rs = rs_new
        return self.A_adjoint(z)

    def y_as_image(self, y: torch.Tensor) -> torch.Tensor:
        """y in image space, what adaptation on y (``adaptation=self``) trains on: A⁺y, unless an operator's
        y already is an image of the image's size (blur), where the exact inverse would only amplify noise."""
        return self.A_pinv(y)

    def check_measurement(self, y: torch.Tensor, image_shape: tuple[int, ...]) -> None:
        """Raise a clear error when ``y`` is not what this operator makes from images of ``image_shape``."""
        expected = self.measurement_shape(image_shape)
        if tuple(y.shape) != tuple(expected):
            raise OperatorInputError(
                f"{type(self).__name__}: measurement has shape {tuple(y.shape)}, but images of shape "
                f"{tuple(image_shape)} give measurements of shape {tuple(expected)}"
            )

    def _check_rank(self, shape: torch.Size | tuple[int, ...], what: str) -> tuple[int, int, int, int]:
        if len(shape) != 4:
            raise OperatorInputError(f"{type(self).__name__}: expected a (B, C, H, W) {what}, got shape {tuple(shape)}")
        return tuple(int(s) for s in shape)  # type: ignore[return-value]

    def _check_image(self, shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int, int]:
        b, c, h, w = self._check_rank(shape, "image")
        if c != self.in_channels:
            raise OperatorInputError(
                f"{type(self).__name__}: expected {self.in_channels} channels, got {c} (shape {tuple(shape)})"
            )
        return b, c, h, w
