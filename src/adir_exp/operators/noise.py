"""Measurement noise, kept apart from the operators: y = A x + e, e ~ N(0, σ² I)."""

from __future__ import annotations

import torch


class GaussianNoise:
    """Additive white Gaussian noise with σ given on the 0–255 scale, as the paper quotes it.

    Images live on [−1, 1] inside the framework (``data_range`` = 2), so σ = 10 means a standard deviation of
    2·10/255 there, i.e. 10/255 on [0, 1].
    """

    def __init__(self, sigma: float = 0.0, data_range: float = 2.0):
        if sigma < 0:
            raise ValueError(f"noise sigma must be non-negative (0–255 scale), got {sigma}")
        self.sigma = float(sigma)
        self.data_range = float(data_range)

    @property
    def std(self) -> float:
        """Standard deviation on the framework's [−1, 1] scale."""
        return self.sigma / 255.0 * self.data_range

    def __call__(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.sigma == 0:
            return y
        noise = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y + self.std * noise

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma}/255)"
