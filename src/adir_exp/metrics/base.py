"""The interface every metric follows, so benchmarks can treat PSNR and MUSIQ alike.

Inputs are float tensors ``(B, 3, H, W)`` with values in ``[0, 1]`` (RGB). A metric returns one score per
image: a float64 CPU tensor of shape ``(B,)``. Full-reference metrics compare ``pred`` with ``target``;
no-reference metrics score ``pred`` and ignore ``target``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

RANGE_TOLERANCE = 1e-6  # float round-off of e.g. (x + 1) / 2 on a clamped [-1, 1] image


def check_image(image: torch.Tensor, role: str) -> None:
    """Reject inputs the metrics would silently misread (wrong layout, 0-255 range, integer dtype)."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError(f"{role} must be a floating-point torch.Tensor, got {getattr(image, 'dtype', type(image))}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"{role} must have shape (B, 3, H, W), got {tuple(image.shape)}")
    low, high = image.min().item(), image.max().item()
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{role} must lie in [0, 1], got [{low:.4g}, {high:.4g}]; clamp or rescale it first")


class Metric(ABC):
    """One image-quality measure: ``metric(pred, target=None) -> (B,)`` scores."""

    name: str
    higher_is_better: bool
    requires_reference: bool
    weight_files: tuple[Path, ...] = ()  # every file the metric's scores depend on (their hashes enter row keys)

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        check_image(pred, "pred")
        if self.requires_reference:
            if target is None:
                raise ValueError(f"{self.name} is a full-reference metric: pass target")
            check_image(target, "target")
            if target.shape != pred.shape:
                raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
            target = target.to(self.device).clamp(0, 1)
        else:
            target = None
        with torch.no_grad():
            scores = self.compute(pred.to(self.device).clamp(0, 1), target)
        return scores.detach().reshape(pred.shape[0]).to("cpu", torch.float64)

    @abstractmethod
    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Scores for validated inputs on ``self.device``; ``target`` is None for no-reference metrics."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"
