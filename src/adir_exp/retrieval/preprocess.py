"""Image → encoder input, shared by the collection (PIL images in loader workers) and the query y (tensors).

One function serves both so that an image and its exact copy get the same embedding whichever way they arrive.
The recipe is CLIP's evaluation transform: RGB, shortest side resized to ``size`` (bicubic, antialiased),
centre crop ``size``², per-channel normalisation. A degraded y enters the same way: a low-resolution y (SR) is
upsampled bicubically to the encoder resolution, a one-channel y (colorisation) is repeated to three channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """Picklable (it travels to DataLoader workers without the model) image → normalised (3, size, size) float32."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def identity(self) -> str:
        """Part of the encoder fingerprint: a different recipe gives different embeddings."""
        mean = ",".join(f"{v:.4f}" for v in self.mean)
        std = ",".join(f"{v:.4f}" for v in self.std)
        return f"shortest{self.size}-bicubic-centercrop-mean{mean}-std{std}"

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """``image``: a PIL image (any mode), or a (C, H, W) / (1, C, H, W) float tensor in [0, 1] with C in {1, 3}."""
        pixels = self._pil_to_tensor(image) if isinstance(image, Image.Image) else self._check_tensor(image)
        pixels = self._resize_crop(pixels)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return ((pixels - mean) / std).contiguous()

    def load(self, image: Image.Image) -> torch.Tensor:
        """Like ``__call__`` for a freshly opened file; lets JPEG decode at reduced scale (DCT) when it is large."""
        if image.format == "JPEG":
            image.draft("RGB", (self.size, self.size))  # result stays >= size on both sides
        return self(image)

    @staticmethod
    def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)

    @staticmethod
    def _check_tensor(image: torch.Tensor) -> torch.Tensor:
        if image.dim() == 4 and image.shape[0] == 1:
            image = image[0]
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"expected a (C, H, W) or (1, C, H, W) image with C in {{1, 3}}, got {tuple(image.shape)}")
        image = image.detach().to("cpu", torch.float32).clamp(0.0, 1.0)  # noise can push y outside [0, 1]
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image

    def _resize_crop(self, pixels: torch.Tensor) -> torch.Tensor:
        _, h, w = pixels.shape
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, math.floor(h * scale + 0.5)), max(self.size, math.floor(w * scale + 0.5))
        if (new_h, new_w) != (h, w):
            pixels = F.interpolate(
                pixels[None], size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False
            )[0].clamp_(0.0, 1.0)
        top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
        return pixels[:, top : top + self.size, left : left + self.size]
