"""Weight files the metric libraries read are data: none may run code when loaded (issue 14).

pyiqa opens MUSIQ checkpoints, and torchvision (under lpips) its cached backbones, with
``torch.load(weights_only=False)``; the metrics load those files themselves with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adir_exp.metrics import LPIPS, MUSIQ
from adir_exp.weights import CheckpointError, entry


class TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``: a harmless stand-in for ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def plant_pickle_bomb(key: str, marker: Path) -> Path:
    path = entry(key).path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(1), "payload": TouchOnUnpickle(marker)}, path)
    return path


@pytest.mark.parametrize(
    ("key", "build"),
    [("musiq-ava", lambda: MUSIQ(dataset="ava")), ("torchvision-alexnet", lambda: LPIPS(net="alex"))],
)
def test_metric_weight_files_cannot_run_code(isolated_home: Path, key: str, build) -> None:
    marker = isolated_home / "MARKER"
    path = plant_pickle_bomb(key, marker)
    with pytest.raises(CheckpointError) as error:
        build()
    assert not marker.exists()
    assert str(path) in str(error.value) and "getattr" in str(error.value)
