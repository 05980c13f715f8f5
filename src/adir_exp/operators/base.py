"""Linear degradation operators y = A x (noise is separate, see :mod:`adir_exp.operators.noise`).

Every operator works on float tensors of shape (B, C, H, W) and offers

* ``A(x)``: the forward map,
* ``A_adjoint(y)``: its true adjoint, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ (tested for every operator),
* ``A_pinv(y)``: a (regularised) pseudo-inverse, used for initialisation and display,
* where A has a closed-form or separable SVD A = U Σ Vᵀ (``supports_svd``): ``U``, ``U_adjoint``, ``V``,
  ``V_adjoint`` and ``singular_values``, which DDRM works with.

Spectral layout: Vᵀx is stored in a tensor of the image's shape and Uᵀy in one of the measurement's shape. Flattened
per sample, the first m entries of Vᵀx (m = measurement size) pair with the m entries of Uᵀy through Σ, and the
remaining n − m entries lie in A's null space: A x = U(σ ⊙ (Vᵀx)[:m]), with σ = ``singular_values`` flattened
(zero from entry m on, and wherever A loses a direction).

The pseudo-inverse is V diag(σ/(σ² + λ)) Uᵀ y where an SVD exists; otherwise it solves (A Aᵀ + λ I) z = y by
conjugate gradients and returns Aᵀ z. Both are the same damped pseudo-inverse Aᵀ(A Aᵀ + λ I)⁻¹, exact as λ → 0.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn


class OperatorInputError(ValueError):
    """An image or measurement does not fit the operator."""


class SVDUnavailableError(NotImplementedError):
    """The operator has no closed-form or separable SVD (DDRM needs one)."""


# Singular values at or below this fraction of the largest are numerical zeros of the SVD, not directions of A.
SVD_RCOND = 1e-10


class LinearOperator(nn.Module, ABC):
    """Base class of the degradation operators."""

    in_channels: int = 3
    supports_svd: bool = False

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
        """Aᵀ (A Aᵀ + λ I)⁻¹ y, λ = ``damping``: through the SVD where there is one, else by conjugate gradients.

        The damping caps the gain of a singular value σ at σ/(σ² + λ) ≤ 1/(2√λ) (500 for the default), which
        matters for blurs, whose smallest σ are near zero; ``damping=0`` gives the exact Moore–Penrose inverse
        (σ ≤ 1e-10·max σ count as zero). ``max_iter`` and ``tol`` only apply to the CG path.
        """
        if self.supports_svd:
            return self._svd_pinv(y, damping)
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

    def _svd_pinv(self, y: torch.Tensor, damping: float) -> torch.Tensor:
        image_shape = self.image_shape(y.shape)
        sigma = self.singular_values(image_shape).to(y)
        measured = self.to_measurement_spectrum(sigma[None], (1, *y.shape[1:]))[0]
        gain = torch.where(measured > SVD_RCOND * sigma.max(), measured / (measured**2 + damping), 0.0)
        return self.V(self.to_image_spectrum(gain * self.U_adjoint(y), image_shape))

    def y_as_image(self, y: torch.Tensor) -> torch.Tensor:
        """y in image space, what adaptation on y (``method=adir_self``) trains on: A⁺y, unless an operator's
        y already is an image of the image's size (blur), where the exact inverse would only amplify noise."""
        return self.A_pinv(y)

    # --- SVD interface: A = U Σ Vᵀ (see the module docstring for the spectral layout) ---

    def V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        """Vᵀ x: the image's coefficients in the right singular basis, in a tensor of the image's shape."""
        self.measurement_shape(x.shape)
        return self._V_adjoint(x)

    def V(self, z: torch.Tensor) -> torch.Tensor:
        """V z: the image with right-singular coefficients ``z`` (image-shaped)."""
        self.measurement_shape(z.shape)
        return self._V(z)

    def U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Uᵀ y: the measurement in the left singular basis, in a tensor of the measurement's shape."""
        self.check_measurement(y, self.image_shape(y.shape))
        return self._U_adjoint(y)

    def U(self, z: torch.Tensor) -> torch.Tensor:
        """U z: the measurement with left-singular coefficients ``z`` (measurement-shaped)."""
        self.check_measurement(z, self.image_shape(z.shape))
        return self._U(z)

    def singular_values(self, image_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """Σ's diagonal for images of ``image_shape``, as a float64 CPU tensor of shape (C, H, W) in Vᵀx's layout."""
        _, c, h, w = self._check_image(image_shape)
        self.measurement_shape(image_shape)
        return self._singular_values(c, h, w)

    @staticmethod
    def to_measurement_spectrum(z: torch.Tensor, measurement_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """The first m entries of image-shaped spectral coefficients ``z``: the ones Σ maps to Uᵀy's."""
        m = math.prod(measurement_shape[1:])
        return z.reshape(z.shape[0], -1)[:, :m].reshape(z.shape[0], *measurement_shape[1:])

    @staticmethod
    def to_image_spectrum(u: torch.Tensor, image_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """Measurement-shaped spectral coefficients ``u`` padded with zeros to the image's shape (Σᵀ's layout)."""
        flat = u.reshape(u.shape[0], -1)
        padded = flat.new_zeros(u.shape[0], math.prod(image_shape[1:]))
        padded[:, : flat.shape[1]] = flat
        return padded.reshape(u.shape[0], *image_shape[1:])

    def _unavailable(self) -> SVDUnavailableError:
        return SVDUnavailableError(
            f"{type(self).__name__} has no closed-form or separable SVD (DDRM and the SVD pseudo-inverse need one)"
        )

    def _V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        raise self._unavailable()

    def _V(self, z: torch.Tensor) -> torch.Tensor:
        raise self._unavailable()

    def _U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise self._unavailable()

    def _U(self, z: torch.Tensor) -> torch.Tensor:
        raise self._unavailable()

    def _singular_values(self, channels: int, height: int, width: int) -> torch.Tensor:
        raise self._unavailable()

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
