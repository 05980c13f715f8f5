"""benchmarks/bench_paper_scale.py --tiny: the CPU smoke run of the paper-scale timing prints a row per variant and
the adapter bank's line (one merge + GD's sampling)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_tiny_run_prints_one_row_per_variant_with_the_projection() -> None:
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_paper_scale.py"), "--tiny", "--threads", "1",
               "--iterations", "1", "--steps", "1", "--warmup", "1", "--variants", "fused,bf16,channels_last"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "EXTRAPOLATED ×400" in result.stdout and "EXTRAPOLATED ×1000" in result.stdout
    header = next(i for i, line in enumerate(lines) if line.startswith("variant"))
    bank = next(i for i, line in enumerate(lines) if line.startswith("ADIR-bank (fp32): merge"))
    rows = {line.split()[0]: line.split() for line in lines[header + 1 : bank]}
    assert list(rows) == ["fp32", "fused", "bf16", "channels_last"]  # fp32 first: the ratios' reference
    assert rows["fp32"][6] == "1.000×"
    assert rows["fused"][2] == rows["fp32"][2]  # sampling runs merged adapters: fp32's step, measured once
    for row in rows.values():
        s_iter, s_step, adapt, sample, image = map(float, row[1:6])
        assert s_iter > 0 and s_step > 0
        assert abs(adapt - 400 * s_iter) < 0.1 + 1e-3 * adapt and abs(sample - 1000 * s_step) < 0.1 + 1e-3 * sample
        assert abs(image - adapt - sample) < 0.2
        assert float(row[8]) > 0  # guided/unguided
    # the bank: one adapter merge on top of fp32's sampling, reported as a ratio to GD's time
    words = lines[bank].split()
    merge, total, ratio = float(words[3]), float(words[10]), float(words[15].rstrip("×"))
    gd = 1000 * float(rows["fp32"][2])
    assert merge > 0 and abs(total - merge - gd) < 0.2 + 1e-3 * gd and abs(ratio - total / gd) < 2e-3
