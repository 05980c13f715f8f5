"""Shared fixtures: paths to the ADM fixtures and a small, fast thread setting for CPU runs."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models gain nothing from intra-op threads and lose a lot when other processes share the cores;
# subprocesses (CLI tests) inherit the setting through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

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
