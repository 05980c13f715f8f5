"""Metric tests run against empty caches unless they ask for provisioned weights (``provisioned``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CALIBRATION_NAMES = ("I03", "I04", "I06", "I08", "I19")


@pytest.fixture(autouse=True)
def _isolate(isolated_home: Path) -> Path:
    return isolated_home


@pytest.fixture
def provisioned(provisioned_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(provisioned_torch_home))
    return provisioned_torch_home


def _load_rgb(path: Path) -> torch.Tensor:
    array = np.array(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


@pytest.fixture(scope="session")
def calibration_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """pyiqa's calibration images (installed by the pyiqa wheel as top-level ``ResultsCalibra/``):
    ``(distorted, reference)``, each ``(5, 3, 384, 512)`` in [0, 1], in the order of CALIBRATION_NAMES."""
    spec = importlib.util.find_spec("pyiqa")
    assert spec is not None and spec.origin is not None
    root = Path(spec.origin).parent.parent / "ResultsCalibra"
    dist = torch.stack([_load_rgb(root / "dist_dir" / f"{name}.bmp") for name in CALIBRATION_NAMES])
    ref = torch.stack([_load_rgb(root / "ref_dir" / f"{name}.bmp") for name in CALIBRATION_NAMES])
    return dist, ref
