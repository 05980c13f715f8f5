"""Image I/O and the framework's two value ranges: files and metrics use [0, 1], diffusion uses [−1, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adir_exp.operators.base import OperatorInputError
from adir_exp.paths import ASSETS_DIR, naming_failures

ASSET_IMAGE = ASSETS_DIR / "astronaut_256.png"
# File suffixes every part of the framework treats as images (all readable by PIL).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp"})


class ImageReadError(OSError):
    """A file could not be read as an image."""


def load_image(path: str | Path) -> torch.Tensor:
    """Read any common image as float RGB (1, 3, H, W) in [0, 1].

    Greyscale is replicated to RGB, alpha is dropped (colour channels kept as stored, not composited), palette
    images are expanded, and 16-bit greyscale keeps its precision (scaled by 65535). PIL reads 16-bit RGB PNGs
    as 8-bit RGB.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(image, dtype=np.float32) / 65535.0
                values = np.repeat(grey[..., None], 3, axis=2)
            else:
                values = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except Exception as error:  # PIL raises many types for corrupt or unsupported files
        raise ImageReadError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(np.ascontiguousarray(values.clip(0.0, 1.0))).permute(2, 0, 1)[None]


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write a (1, C, H, W) or (C, H, W) tensor in [0, 1] as an 8-bit PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.detach().float().cpu().clamp(0, 1)
    if array.ndim == 4:
        array = array[0]
    array = (array.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    with naming_failures(path):
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path)
    return path


def to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [−1, 1]."""
    return image * 2.0 - 1.0


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[−1, 1] → [0, 1], clipped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def center_crop(image: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """Central ``height``×``width`` window; raises when the image is smaller."""
    width = width or height
    h, w = image.shape[-2:]
    if h < height or w < width:
        raise OperatorInputError(f"image is {h}×{w}, smaller than the requested crop {height}×{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return image[..., top : top + height, left : left + width]


def crop_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop both sides down to a multiple of ``multiple`` (the explicit crop policy for SR factors)."""
    h, w = image.shape[-2:]
    return center_crop(image, h - h % multiple, w - w % multiple)


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic resize (anti-aliased) so that the short side is ``size``."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    out = torch.nn.functional.interpolate(
        image, size=(round(h * scale), round(w * scale)), mode="bicubic", antialias=True, align_corners=False
    )
    return out.clamp(0.0, 1.0)


def upsample_for_display(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour upsampling of a (possibly small, possibly 1-channel) measurement for grids."""
    y = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y
    return torch.nn.functional.interpolate(y, size=size, mode="nearest")


def image_grid(columns: list[torch.Tensor], labels: list[str] | None = None, pad: int = 4) -> torch.Tensor:
    """Side-by-side (1, 3, H, W) images in [0, 1] with white gutters; labels are drawn when PIL has a font."""
    height = max(c.shape[-2] for c in columns)
    tiles = []
    for column in columns:
        column = upsample_for_display(column, (height, round(column.shape[-1] * height / column.shape[-2])))
        tiles += [column, torch.ones(1, 3, height, pad)]
    grid = torch.cat(tiles[:-1], dim=-1)
    if not labels:
        return grid
    from PIL import ImageDraw

    canvas = Image.fromarray((grid[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    band = Image.new("RGB", (canvas.width, 14), "white")
    draw = ImageDraw.Draw(band)
    x = 0
    for column, label in zip(columns, labels):
        width = round(column.shape[-1] * height / column.shape[-2])
        draw.text((x + 2, 1), label, fill="black")
        x += width + pad
    stacked = Image.new("RGB", (canvas.width, canvas.height + band.height), "white")
    stacked.paste(band, (0, 0))
    stacked.paste(canvas, (0, band.height))
    return torch.from_numpy(np.asarray(stacked, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
