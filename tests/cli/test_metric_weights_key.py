"""A metric's weight files are part of every row's key: replacing one in place makes new rows (issue 20, item 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.weights import entry
from tests.cli.helpers import rows, run_app
from tests.security.crafted import stand_in_weights

ONLY_LPIPS = [f"~metrics.metrics.{m}" for m in ("ssim", "lpips_vgg", "dists", "niqe")]


@pytest.mark.integration
def test_replacing_the_lpips_backbone_in_place_makes_new_rows(isolated_home: Path, tmp_path: Path) -> None:
    """Before, the same key: "0 new rows, 1 already done", with LPIPS scored by the old file."""
    backbone = stand_in_weights("torchvision-alexnet", entry("torchvision-alexnet").path)
    folder, results = tmp_path / "images", tmp_path / "results"
    folder.mkdir()
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "a.png")
    args = ["method=[bicubic]", "benchmark.size=32", *ONLY_LPIPS, "metrics.on_missing=strict",
            f"benchmark.dataset={folder}", f"benchmark.results_dir={results}"]
    run_app("bench", args, tmp_path / "h1")
    run_app("bench", args, tmp_path / "h2")
    (first,) = rows(results)  # the same files: the row is reused

    stand_in_weights("torchvision-alexnet", backbone)  # other values, same path and size
    run_app("bench", args, tmp_path / "h3")
    first_again, second = sorted(rows(results), key=lambda row: row["key"] != first["key"])
    assert first_again == first and second["key"] != first["key"] and second["lpips"] != first["lpips"]
