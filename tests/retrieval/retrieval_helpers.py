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


def tiny_open_clip_overrides(folder: Path, index_dir: Path) -> list[str]:
    """Index ``folder`` with the tiny random-weight open_clip model (image and text towers) and return the
    ``retrieval`` overrides that query it: text retrieval without any real CLIP weights."""
    import json

    from adir_exp.retrieval.build import build_index
    from adir_exp.retrieval.embedding import EmbedConfig
    from adir_exp.retrieval.encoders import OpenClipEncoder

    config = index_dir.parent / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    encoder = OpenClipEncoder("tiny-clip", pretrained=None, model_config=str(config), random_init=True)
    embed = EmbedConfig(batch_size=4, num_workers=0, accelerator="cpu", devices=1, progress=False)
    build_index(folder, index_dir, encoder, embed=embed)
    return ["retrieval=knn", "retrieval/encoder=open_clip", f"retrieval.index_dir={index_dir}",
            "retrieval.encoder.model_name=tiny-clip", "retrieval.encoder.pretrained=null",
            "+retrieval.encoder.random_init=true", f"retrieval.encoder.model_config={config}"]
