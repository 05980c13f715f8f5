"""Shared fixtures: paths to the ADM fixtures, tiny SD pipelines on disk, and a fast thread setting for CPU runs."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models gain nothing from intra-op threads and lose a lot when other processes share the cores;
# subprocesses (CLI tests) inherit the setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def adm_fixtures() -> Path:
    return FIXTURES / "adm"


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty ADIR_HOME / TORCH_HOME / ADIR_WEIGHTS, so a test never sees (or fills) the user's caches."""
    home = tmp_path / "adir_home"
    monkeypatch.setenv("ADIR_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("ADIR_WEIGHTS", str(home / "weights"))
    return home


@pytest.fixture(scope="session")
def sdist_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Downloaded sdists survive between runs in pytest's cache (a fresh checkout downloads them once)."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("adir-sdists")) if cache is not None else tmp_path_factory.mktemp("sdists")


@pytest.fixture(scope="session")
def provisioned_torch_home(sdist_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME filled by ``adir-weights provision`` once per session (LPIPS backbones, NIQE prior)."""
    from adir_exp.weights.provision import provision

    torch_home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        provision(sdist_cache, log=lambda _: None)
    return torch_home


@pytest.fixture(scope="session")
def tiny_upscaler_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD x4 upscaler (tests/models/sd_tiny.py) in the diffusers layout, for ``model.pipeline.path``."""
    from tests.priors.sd_tiny import saved, tiny_upscaler

    return saved(tiny_upscaler(), tmp_path_factory.mktemp("sd") / "x4")


@pytest.fixture(scope="session")
def tiny_inpainter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD inpainting pipeline in the diffusers layout."""
    from tests.priors.sd_tiny import saved, tiny_inpainter

    return saved(tiny_inpainter(), tmp_path_factory.mktemp("sd") / "inpaint")


@pytest.fixture(scope="session")
def adaptation_image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small random RGB images (40×48), given as ``adaptation.images`` instead of retrieval."""
    from adir_exp.data.images import save_image

    root = tmp_path_factory.mktemp("adaptation_images")
    generator = torch.Generator().manual_seed(0)
    return [save_image(torch.rand(1, 3, 40, 48, generator=generator), root / f"neighbour{i}.png") for i in range(2)]
