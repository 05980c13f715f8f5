"""``adir-run`` end to end on the tiny ADM: composes, reconstructs, writes images, metrics and logs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.integration
def test_adir_run_writes_grid_and_metrics(tmp_path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "adir_exp.cli.run", "sampler.num_steps=5", "image_size=32", "sampler.progress=false",
         *(f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "niqe", "musiq_ava", "musiq_koniq")),
         f"hydra.run.dir={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("grid.png", "ground_truth.png", "measurement.png", "reconstruction.png", "metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"psnr", "pseudo_inverse/psnr"}
    assert "random weights" in result.stdout + result.stderr
    assert (out / "logs" / "metrics.csv").is_file()


@pytest.mark.integration
def test_adir_run_reports_missing_gd_checkpoint(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adir_exp.cli.run", "model=gd256_uncond", f"hydra.run.dir={tmp_path}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "ADIR_WEIGHTS": str(tmp_path)},
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "256x256_diffusion_uncond.pt" in output and "never downloads" in output
