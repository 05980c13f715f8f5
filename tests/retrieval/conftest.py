"""Shared fixtures: generated image collections, a tiny random-weight open_clip model, the offline encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from retrieval_helpers import TINY_CLIP

from adir_exp.paths import configure_environment

configure_environment()  # hub libraries must see the offline settings before they are imported


@pytest.fixture(scope="session")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("open_clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return path


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_config: Path):
    from adir_exp.retrieval.encoders import OpenClipEncoder

    return OpenClipEncoder("tiny-clip", pretrained=None, model_config=str(tiny_clip_config), random_init=True)


@pytest.fixture(scope="session")
def effnet():
    from adir_exp.retrieval.encoders import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder()


@pytest.fixture(scope="session")
def fast_embed():
    """In-process loading, no progress bar: the tests' collections are tiny."""
    from adir_exp.retrieval.embedding import EmbedConfig

    return EmbedConfig(batch_size=4, num_workers=0, accelerator="cpu", devices=1, progress=False)


PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera", "horse", "coins", "moon", "page", "immunohistochemistry")


@pytest.fixture(scope="session")
def photo_index(tmp_path_factory: pytest.TempPathFactory, effnet, fast_embed) -> Path:
    """scikit-image's sample photos indexed with the offline encoder (built once per session)."""
    from PIL import Image
    from skimage import data

    from adir_exp.retrieval.build import build_index

    root = tmp_path_factory.mktemp("photos")
    (root / "collection").mkdir()
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(root / "collection" / f"{name}.png")
    build_index(root / "collection", root / "index", effnet, embed=fast_embed)
    return root
