"""A tiny bank setting: six generated images of two colour casts indexed with the offline encoder (128 px), the
tiny ADM prior of the adaptation tests, and LoRA settings that fit in a second."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adir_exp.adaptation import LoRAFit
from adir_exp.data.images import save_image
from adir_exp.operators import BicubicDownsample, GaussianNoise, Physics
from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.embedding import EmbedConfig
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder
from adir_exp.retrieval.query import Retriever
from tests.adaptation.conftest import (  # noqa: F401
    photo,
    random_lpips,
    schedule,
    sr_problem,
    tiny_prior,
)

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


def write_collection(folder: Path, count: int = 6, seed: int = 0) -> Path:
    """``count`` noisy 40×48 images, alternately reddish and bluish (two clear neighbourhoods)."""
    generator = torch.Generator().manual_seed(seed)
    for i in range(count):
        cast = torch.tensor([0.8, 0.3, 0.1] if i % 2 else [0.1, 0.3, 0.8]).view(1, 3, 1, 1)
        save_image((cast + 0.2 * torch.rand(1, 3, 40, 48, generator=generator)).clamp(0, 1), folder / f"img{i}.png")
    return folder


def index_of(folder: Path, index_dir: Path, encoder: EfficientNetLite0Encoder) -> Path:
    build_index(folder, index_dir, encoder, embed=EmbedConfig(batch_size=8, num_workers=0, accelerator="cpu",
                                                              devices=1, progress=False))
    return index_dir


@pytest.fixture(scope="session")
def encoder() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder(image_size=128)


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory, encoder) -> Path:
    root = tmp_path_factory.mktemp("bank_collection")
    return index_of(write_collection(root / "collection"), root / "index", encoder)


@pytest.fixture
def retriever(index_dir: Path, encoder) -> Retriever:
    return Retriever(index_dir, encoder, k=2)


@pytest.fixture
def physics() -> Physics:
    return Physics(BicubicDownsample(4), GaussianNoise(0.0))


@pytest.fixture
def fit() -> LoRAFit:
    return LoRAFit(iterations=2, batch_size=2, lr=1e-3, rank=4, crop_size=32, progress=False)
