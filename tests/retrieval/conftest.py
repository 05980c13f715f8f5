"""Shared fixtures: generated image collections, a tiny random-weight open_clip model, the offline encoder."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import pytest
import torch
from retrieval_helpers import TINY_CLIP

from adir_exp.paths import configure_environment

configure_environment()  # hub libraries must see the offline settings before they are imported


@pytest.fixture(autouse=True)
def single_threaded(monkeypatch: pytest.MonkeyPatch):
    """One thread for torch and FAISS during each retrieval test, restored afterwards (other folders keep theirs).

    The workloads are tiny, so OpenMP thread teams cannot speed them up; on a loaded CI machine their
    spin-waiting barriers made the robustness tests 10x slower. OMP_NUM_THREADS keeps Lightning's DDP launcher
    from raising torch's thread count again.
    """
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(faiss_threads)


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
def effnet_128():
    """The offline encoder at 128 px: a third of the compute, for tests that query a lot."""
    from adir_exp.retrieval.encoders import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(image_size=128)


@pytest.fixture(scope="session")
def fast_embed():
    """In-process loading, no progress bar: the tests' collections are tiny."""
    from adir_exp.retrieval.embedding import EmbedConfig

    return EmbedConfig(batch_size=4, num_workers=0, accelerator="cpu", devices=1, progress=False)


PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "camera",
    "horse",
    "coins",
    "moon",
    "page",
    "immunohistochemistry",
)


@pytest.fixture(scope="session")
def photo_index(tmp_path_factory: pytest.TempPathFactory, effnet_128, fast_embed) -> Path:
    """scikit-image's sample photos indexed with the offline encoder at 128 px (built once per session)."""
    from PIL import Image
    from skimage import data

    from adir_exp.retrieval.build import build_index

    root = tmp_path_factory.mktemp("photos")
    (root / "collection").mkdir()
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(root / "collection" / f"{name}.png")
    build_index(root / "collection", root / "index", effnet_128, embed=fast_embed)
    return root
