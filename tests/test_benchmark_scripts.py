"""Every timing script under benchmarks/ runs on tiny settings (seconds of compute; starting Python and importing
torch costs more), so none breaks unnoticed: an import that moved, a config that changed shape, a flag that
gpu_session.sh passes. bench_paper_scale.py has its own, finer smoke test (test_bench_paper_scale.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"
CPU = ["--device", "cpu"]
# script: (tiny arguments, the first words of the lines its report must hold)
SMOKE_RUNS = {
    "bench_adaptation.py": (["--arch", "tiny", "--batch", "1", "--rounds", "1", "--iterations", "1", "--threads", "1",
                             *CPU], ["frozen", "lora", "lora_fused", "lora_ckpt", "full", "targets, lora_fused:"]),
    "bench_retrieval.py": (["--n", "3000", "--dim", "64", "--queries", "20", "--exact-queries", "5", "--images", "4",
                            "--repeats", "1", "--batch-size", "2", "--workers", "0", "--skip-isotropic"],
                           ["clustered  exact IndexFlatIP", "clustered  IVF", "encode_images alone",
                            "full build loop, 0 worker"]),
    "bench_sampler.py": (["--arch", "tiny", "--size", "32", "--steps", "1", *CPU],
                         ["unguided", "adir", "dps", "ADIR/unguided =", "ADIR/DPS      ="]),
    "bench_startup.py": (["--repeats", "1"], ["adir-run --help", "adir-bench --help", "adir-index --help"]),
}
OWN_TEST = {"bench_paper_scale.py"}


def run_script(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    source = os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "PYTHONPATH": source, **(env or {})})


def test_every_script_has_a_smoke_run() -> None:
    assert sorted(SMOKE_RUNS.keys() | OWN_TEST) == sorted(path.name for path in BENCHMARKS.glob("*.py"))


# bench_adaptation measures each mode's memory in a fresh process: six interpreters importing torch, diffusers and
# peft (≈ 10 s of CPU each) whatever the model's size, so its smoke run is one of the slower tests.
SLOW = {"bench_adaptation.py"}


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=pytest.mark.integration) if s in SLOW else s for s in sorted(SMOKE_RUNS)]
)
def test_script_runs_on_tiny_settings_and_prints_its_table(script: str) -> None:
    arguments, lines = SMOKE_RUNS[script]
    result = run_script([sys.executable, str(BENCHMARKS / script), *arguments])
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout.splitlines()
    missing = [start for start in lines if not any(line.startswith(start) for line in printed)]
    assert missing == [], result.stdout


@pytest.mark.integration
def test_gpu_session_smoke_runs_every_step_or_says_why_it_skips(tmp_path: Path) -> None:
    """``SMOKE=1``: every default step on tiny settings (``FULL=1``'s extra steps are the bench_adaptation and
    bench_sampler runs smoke-tested above; ``TRAIN=1`` asks for training); without faiss-gpu wheels, metric
    weights or a corpus under its ``ADIR_HOME`` it skips those steps and says so."""
    out = tmp_path / "out"
    settings = {"SMOKE": "1", "TRAIN": "1", "OUT": str(out), "ADIR_HOME": str(tmp_path / "home"),
                "PYTHON": sys.executable}
    result = run_script(["bash", str(BENCHMARKS / "gpu_session.sh")], env=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "log.txt").read_text()
    for expected in ("EXTRAPOLATED ×1000", "ADIR-bank (fp32): merge", "bench_retrieval --gpu skipped",
                     "baselines' rows: skipped", "train prior: skipped (no corpus"):
        assert expected in log, log[-3000:]
    assert "Traceback" not in log and "usage:" not in log, log[-3000:]
