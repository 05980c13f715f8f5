"""Inpainting degradation: pixels outside a binary mask are lost (y keeps the image size, zeros there)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from adir_exp.operators.base import LinearOperator, OperatorInputError


def box_mask(height: int, width: int, fraction: float) -> torch.Tensor:
    """A centred hole covering ``fraction`` of each side."""
    mask = torch.ones(height, width)
    hh, hw = round(height * fraction), round(width * fraction)
    top, left = (height - hh) // 2, (width - hw) // 2
    mask[top : top + hh, left : left + hw] = 0
    return mask


def random_pixel_mask(height: int, width: int, fraction: float, seed: int) -> torch.Tensor:
    """``fraction`` of the pixels dropped uniformly at random, reproducibly from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(height, width, generator=generator) >= fraction).float()


class Inpainting(LinearOperator):
    """y = m ⊙ x with a 0/1 mask m shared by all channels; A is an orthogonal projection, so Aᵀ = A⁺ = A.

    SVD: U = V = the permutation that puts the kept pixels first (in (C, H, W) order), then the lost ones;
    Σ is 1 on the kept pixels and 0 on the lost ones (y keeps the image's shape, so m = n).

    ``mask`` selects the mask: ``box`` (centred hole, ``fraction`` of each side), ``random`` (``fraction`` of
    pixels dropped, ``seed``) or ``file`` (``path`` to a greyscale image, white = kept). The mask is built for each
    image size on first use.
    """

    supports_svd = True

    def __init__(
        self,
        mask: Literal["box", "random", "file"] = "box",
        fraction: float = 0.5,
        seed: int = 0,
        path: str | None = None,
        channels: int = 3,
    ):
        super().__init__()
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"mask fraction must lie in [0, 1], got {fraction}")
        if mask == "file" and not path:
            raise ValueError("mask='file' needs path= to a mask image")
        self.mask_kind, self.fraction, self.seed, self.path = mask, fraction, seed, path
        self.in_channels = channels
        self._masks: dict[tuple[int, int], torch.Tensor] = {}
        self._orders: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, int]] = {}

    def mask_for(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._masks:
            if self.mask_kind == "box":
                mask = box_mask(height, width, self.fraction)
            elif self.mask_kind == "random":
                mask = random_pixel_mask(height, width, self.fraction, self.seed)
            elif self.mask_kind == "file":
                image = np.asarray(Image.open(Path(self.path)).convert("L"), dtype=np.float32) / 255.0
                if image.shape != (height, width):
                    raise OperatorInputError(f"mask {self.path} is {image.shape[0]}×{image.shape[1]}, image is {height}×{width}")
                mask = torch.from_numpy((image > 0.5).astype(np.float32))
            else:
                raise ValueError(f"unknown mask kind {self.mask_kind!r}; choose box, random or file")
            self._masks[key] = mask
        return self._masks[key]

    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        return self._check_image(image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask_for(x.shape[-2], x.shape[-1]).to(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._forward(y)

    def A_pinv(self, y: torch.Tensor, **_: object) -> torch.Tensor:
        return self.A_adjoint(y)

    # --- SVD: a permutation ---

    def _order(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Flat (C, H, W) positions of the kept pixels then the lost ones, the inverse permutation, #kept."""
        key = (height, width)
        if key not in self._orders:
            kept = (self.mask_for(height, width) > 0.5).expand(self.in_channels, height, width).flatten()
            order = torch.cat([kept.nonzero()[:, 0], (~kept).nonzero()[:, 0]])
            self._orders[key] = (order, torch.argsort(order), int(kept.sum()))
        return self._orders[key]

    def _permute(self, z: torch.Tensor, inverse: bool) -> torch.Tensor:
        order = self._order(z.shape[-2], z.shape[-1])[int(inverse)].to(z.device)
        return z.reshape(z.shape[0], -1)[:, order].reshape(z.shape)

    def _V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        return self._permute(x, inverse=False)

    def _V(self, z: torch.Tensor) -> torch.Tensor:
        return self._permute(z, inverse=True)

    def _U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._permute(y, inverse=False)

    def _U(self, z: torch.Tensor) -> torch.Tensor:
        return self._permute(z, inverse=True)

    def _singular_values(self, channels: int, height: int, width: int) -> torch.Tensor:
        values = torch.zeros(channels * height * width, dtype=torch.float64)
        values[: self._order(height, width)[2]] = 1.0
        return values.reshape(channels, height, width)
