"""adir-bench-curve: one fit per tile read at several step counts, one line per swept setting."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.cli.helpers import CHEAP_METRICS, cli


@pytest.mark.integration
def test_a_lr_sweep_gives_one_curve_per_lr_from_snapshot_rows(tmp_path, provisioned_torch_home) -> None:
    data = tmp_path / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(data / f"img{i}.png")
    sweep = tmp_path / "sweep"
    result = cli("bench", ["-m", "adaptation.lr=1e-4,1e-2", "method=[gd,adir_self]", *CHEAP_METRICS,
                           "sampler.num_steps=3", "sampler.progress=false", "benchmark.size=32",
                           "adaptation.iterations=4", "adaptation.reconstruct_at=[1,2]", "adaptation.batch_size=2",
                           f"benchmark.dataset={data}", f"benchmark.results_dir={tmp_path / 'r'}",
                           f"hydra.sweep.dir={sweep}"], env={"TORCH_HOME": str(provisioned_torch_home)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "curve"
    made = subprocess.run([sys.executable, "-c", "from adir_exp.cli.bench import curve; curve()", str(sweep),
                           "--method", "adir_self", "--metrics", "psnr", "--resamples", "200", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    table = (out / "curve.md").read_text().splitlines()[2:]
    assert len(table) == 2 * 4  # two learning rates × (0, 1, 2, 4 steps)
    assert {line.split(" | ")[1] for line in table} == {"0", "1", "2", "4"}
    assert any("adaptation.lr=0.01" in line for line in table) and (out / "curve.png").stat().st_size > 1000
