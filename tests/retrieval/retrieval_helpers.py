"""Helpers shared by the retrieval tests (a uniquely named module: test folders are not packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_image(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """Noise over a random colour gradient: distinct images whose embeddings do not tie."""
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0, 255, (1, 1, 3))
    noise = rng.normal(0, 40, (height, width, 3))
    return Image.fromarray(np.clip(ramp + noise + rng.uniform(0, 80), 0, 255).astype(np.uint8))


def write_collection(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` PNGs of varied sizes in two sub-folders."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = root / ("a" if i % 2 else "b") / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_image(rng, int(rng.integers(24, 64)), int(rng.integers(24, 64))).save(path)
        paths.append(path)
    return paths


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1], as adaptation code holds images."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255.0
