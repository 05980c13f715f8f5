"""The benchmark's image list: the first N files of a folder (DIV2K validation HR by default), preprocessed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from adir_exp.data.images import ImageReadError, center_crop, load_image, resize_short_side

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
Preprocess = Literal["center_crop", "resize_crop"]


class DatasetError(FileNotFoundError):
    """The dataset folder is missing or holds no images."""


@dataclass(frozen=True)
class BenchmarkImage:
    image_id: str
    path: Path


def list_images(root: str | Path, first_n: int | None = 50) -> list[BenchmarkImage]:
    """Image files of ``root`` sorted by name (DIV2K: 0801.png … 0900.png), the first ``first_n`` of them."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder not found: {root}\n  Point benchmark.dataset at a folder of images, e.g. DIV2K's "
            f"validation HR set (DIV2K_valid_HR, images 0801–0900); this framework never downloads it."
        )
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return [BenchmarkImage(p.stem, p) for p in files[:first_n]]


def shard(images: list[BenchmarkImage], spec: str) -> list[BenchmarkImage]:
    """Images of shard ``"i/n"`` (every n-th image from the i-th), so shards are balanced and disjoint."""
    index, count = (int(v) for v in str(spec).split("/"))
    if not 0 <= index < count:
        raise ValueError(f"shard must be 'i/n' with 0 ≤ i < n, got {spec!r}")
    return images[index::count]


def prepare(path: Path, size: int | None, mode: Preprocess) -> torch.Tensor:
    """Load as RGB [0, 1] and cut a ``size``×``size`` square.

    ``center_crop`` keeps the native resolution (the paper's GD tables crop DIV2K's 2K images); images smaller
    than ``size`` are first resized so their short side fits. ``resize_crop`` resizes the short side to ``size``
    first (whole-scene content at lower resolution).
    """
    image = load_image(path)
    if size is None:
        return image
    if mode == "resize_crop" or min(image.shape[-2:]) < size:
        image = resize_short_side(image, size)
    elif mode != "center_crop":
        raise ValueError(f"unknown preprocessing {mode!r}; choose center_crop or resize_crop")
    return center_crop(image, size)


def load_all(
    images: list[BenchmarkImage], size: int | None, mode: Preprocess
) -> tuple[list[tuple[BenchmarkImage, torch.Tensor]], list[tuple[BenchmarkImage, str]]]:
    """Prepared images, and the (image, reason) pairs that could not be read (reported, skipped, counted)."""
    loaded, skipped = [], []
    for item in images:
        try:
            loaded.append((item, prepare(item.path, size, mode)))
        except ImageReadError as error:
            log.warning("skipping unreadable image %s: %s", item.path, error)
            skipped.append((item, str(error)))
    return loaded, skipped
