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
