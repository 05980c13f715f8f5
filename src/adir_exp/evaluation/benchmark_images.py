"""The benchmark's image list: the first N files of a folder (DIV2K validation HR by default), preprocessed.

Each file is one benchmark image, or, with ``preprocess="tiles"``, several: the photo is resized to a short
side of ``tiles.scale`` and cut into a grid of non-overlapping ``size``×``size`` tiles, of which
``tiles.per_image`` evenly spread ones are used (ids ``<file id>_t<k>``, :func:`image_ids`). That turns a
handful of held-out photos into enough small test images for a CPU-sized study (the mini-reproduction).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from adir_exp.data.images import (
    IMAGE_SUFFIXES,
    ImageReadError,
    center_crop,
    load_image,
    resize_short_side,
)

log = logging.getLogger(__name__)

Preprocess = Literal["center_crop", "resize_crop", "tiles"]


class DatasetError(FileNotFoundError):
    """The dataset folder is missing or holds no images."""


@dataclass(frozen=True)
class BenchmarkImage:
    image_id: str
    path: Path
    tile: int | None = None  # which of the file's tiles (preprocess="tiles"), else the whole file


@dataclass(frozen=True)
class Tiles:
    """``preprocess="tiles"``: resize to short side ``scale``, use ``per_image`` tiles of the size×size grid; a
    tile whose pixel standard deviation is below ``min_std`` (a white page margin, a flat sky) is skipped, since
    no-reference metrics cannot score it and it says nothing about a prior."""

    scale: int
    per_image: int
    min_std: float = 0.0


def expand_tiles(images: list[BenchmarkImage], per_image: int) -> list[BenchmarkImage]:
    """One entry per tile, file by file (sharding then spreads a file's tiles over the jobs)."""
    return [BenchmarkImage(f"{item.image_id}_t{k}", item.path, k) for item in images for k in range(per_image)]


def tile_boxes(height: int, width: int, size: int, count: int) -> list[tuple[int, int]]:
    """(top, left) of ``count`` tiles spread evenly (row-major) over the centred grid of whole size×size tiles."""
    rows, cols = height // size, width // size
    if rows * cols < count:
        raise ValueError(f"a {height}×{width} image holds {rows * cols} tiles of {size}×{size}, {count} requested; "
                         f"raise benchmark.tiles.scale or lower benchmark.tiles.per_image")
    top0, left0 = (height - rows * size) // 2, (width - cols * size) // 2
    picks = [round(i * (rows * cols - 1) / max(1, count - 1)) for i in range(count)]
    return [(top0 + (p // cols) * size, left0 + (p % cols) * size) for p in picks]


def list_images(root: str | Path, first_n: int | None = 50, include: list[str] | None = None) -> list[BenchmarkImage]:
    """Image files of ``root`` sorted by name (DIV2K: 0801.png … 0900.png), the first ``first_n`` of them (None:
    all); ``include`` keeps only the named files (stems or names) first."""
    if first_n is not None and first_n < 1:
        raise ValueError(f"first_n must be a positive number of images or null (all), got {first_n}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder not found: {root}\n  Point benchmark.dataset at a folder of images, e.g. DIV2K's "
            f"validation HR set (DIV2K_valid_HR, images 0801–0900); this framework never downloads it."
        )
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    ids = image_ids(files)
    if include is not None:
        missing = set(include) - {p.stem for p in files} - {p.name for p in files}
        if missing:
            raise DatasetError(f"benchmark.include names files that are not in {root}: {sorted(missing)}")
        files = [p for p in files if p.stem in include or p.name in include]
    if not files:
        raise DatasetError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return [BenchmarkImage(ids[p], p) for p in files[:first_n]]


def image_ids(files: list[Path]) -> dict[Path, str]:
    """Each file's id, which names its output folder: the stem where no other image file of the folder shares it
    (case-insensitively; DIV2K's ``0801``), else the name with its extension (``x.png`` beside ``x.jpg``), so two
    files are never one image. Ids that would still collide in the output folder are refused."""
    stems = Counter(p.stem.casefold() for p in files)
    ids = {p: p.stem if stems[p.stem.casefold()] == 1 else p.name for p in files}
    holders: dict[str, list[str]] = defaultdict(list)
    for path, image_id in ids.items():
        holders[image_id.casefold()].append(path.name)
    if clashes := [names for names in holders.values() if len(names) > 1]:
        raise DatasetError(
            f"{files[0].parent}: files whose outputs would share a folder: "
            f"{'; '.join(' and '.join(names) for names in clashes)}; rename one of each"
        )
    return ids


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 ≤ i < n."""
    try:
        index, count = (int(v) for v in str(spec).split("/"))
    except ValueError:
        index = count = -1
    if not 0 <= index < count:
        raise ValueError(f"a shard is 'i/n' with integers 0 ≤ i < n, got {spec!r}")
    return index, count


def shard(images: list[BenchmarkImage], index: int, count: int) -> list[BenchmarkImage]:
    """Images of shard i of n (every n-th image from the i-th), so shards are balanced and disjoint."""
    return images[index::count]


def prepare(path: Path, size: int | None, mode: Preprocess, tile: int | None = None,
            tiles: Tiles | None = None) -> torch.Tensor:
    """Load as RGB [0, 1] and cut a ``size``×``size`` square.

    ``center_crop`` keeps the native resolution (the tables' policy; the paper does not say how its 512² and
    256² images were made from DIV2K's 2K ones: docs/paper_settings.md); images smaller than ``size`` are first
    resized so their short side fits. ``resize_crop`` resizes the short side to ``size`` first (whole-scene
    content at lower resolution). ``tiles`` returns tile number ``tile`` (module docstring).
    """
    image = load_image(path)
    if mode == "tiles":
        if size is None or tile is None or tiles is None:
            raise ValueError("preprocess=tiles needs benchmark.size, benchmark.tiles and a tiled image list")
        image = resize_short_side(image, tiles.scale)
        top, left = tile_boxes(*image.shape[-2:], size, tiles.per_image)[tile]
        return image[..., top : top + size, left : left + size]
    if size is None:
        return image
    if mode == "resize_crop" or min(image.shape[-2:]) < size:
        image = resize_short_side(image, size)
    elif mode != "center_crop":
        raise ValueError(f"unknown preprocessing {mode!r}; choose center_crop, resize_crop or tiles")
    return center_crop(image, size)


def load_all(
    images: list[BenchmarkImage], size: int | None, mode: Preprocess, tiles: Tiles | None = None
) -> tuple[list[tuple[BenchmarkImage, torch.Tensor]], list[tuple[BenchmarkImage, str]]]:
    """Prepared images, and the (image, reason) pairs that could not be read or were near-constant tiles
    (reported, skipped, counted)."""
    loaded, skipped = [], []
    for item in images:
        try:
            image = prepare(item.path, size, mode, item.tile, tiles)
        except ImageReadError as error:
            log.warning("skipping unreadable image %s: %s", item.path, error)
            skipped.append((item, str(error)))
            continue
        if tiles is not None and tiles.min_std and (spread := float(image.std())) < tiles.min_std:
            skipped.append((item, f"near-constant tile {item.tile} (std {spread:.4f} < tiles.min_std {tiles.min_std})"))
            continue
        loaded.append((item, image))
    flat = sum("near-constant" in reason for _, reason in skipped)
    if flat:
        log.info("%d near-constant tiles skipped (benchmark.tiles.min_std=%s)", flat, tiles.min_std)
    return loaded, skipped
