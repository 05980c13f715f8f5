"""Shared fixtures: paths to the ADM fixtures and a small, fast thread setting for CPU runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def adm_fixtures() -> Path:
    return FIXTURES / "adm"
