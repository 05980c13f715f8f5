"""Deblurring degradations: uniform (box) and Gaussian blur, same-size output."""

from __future__ import annotations

import math

import torch

from adir_exp.operators.padding import BoundaryMode
from adir_exp.operators.separable import SeparableCorrelation


class Blur(SeparableCorrelation):
    """Same-size blur with a separable kernel: y is itself a (blurred) image, so it is its own image-space view."""

    def y_as_image(self, y: torch.Tensor) -> torch.Tensor:
        return y


class BoxBlur(Blur):
    """Uniform ``size``×``size`` blur (the paper's 5×5 box); the border is extended by ``boundary``."""

    def __init__(self, size: int = 5, boundary: BoundaryMode = "reflect", channels: int = 3):
        if size < 1 or size % 2 == 0:
            raise ValueError(f"box size must be a positive odd integer, got {size}")
        taps = torch.full((size,), 1.0 / size, dtype=torch.float64)
        super().__init__(taps, taps, stride=1, boundary=boundary, channels=channels)


def gaussian_taps(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (the isotropic 2-D kernel is their outer product with themselves); the default
    size 2·⌈3σ⌉+1 keeps 99.7 % of the mass per axis."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    size = size or 2 * math.ceil(3 * sigma) + 1
    if size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd, got {size}")
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(axis**2) / (2 * sigma**2))
    return taps / taps.sum()


class GaussianBlur(Blur):
    """Gaussian blur with standard deviation ``sigma`` pixels (the paper uses σ_blur = 2)."""

    def __init__(self, sigma: float = 2.0, size: int | None = None, boundary: BoundaryMode = "reflect", channels: int = 3):
        taps = gaussian_taps(sigma, size)
        super().__init__(taps, taps, stride=1, boundary=boundary, channels=channels)
        self.sigma = sigma
