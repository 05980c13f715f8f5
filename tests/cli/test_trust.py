"""Results that can be trusted: a sweep never reports another setting's rows, two runs on one directory never
compute a row twice, a metric that cannot score an input never costs the outputs, and empty or mistyped inputs
are errors, not empty tables with exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.cli.config import ConfigError
from tests.cli.helpers import CHEAP_METRICS, cli, rows, run_app

FAST = ["sampler.num_steps=6", "sampler.progress=false", "benchmark.size=32", *CHEAP_METRICS, "method=[gd]"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    return root


@pytest.mark.integration
def test_a_sweep_reports_each_settings_own_rows(dataset, tmp_path) -> None:
    """The defect: `-m sampler.guidance_scale=0,50` printed the s = 0 numbers for s = 50 ("0 new rows")."""
    results, sweep = tmp_path / "results", tmp_path / "sweep"
    result = cli("bench", ["-m", "sampler.guidance_scale=0,50", *FAST, f"benchmark.dataset={dataset}",
                           "benchmark.first_n=2", f"benchmark.results_dir={results}", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    written = rows(results)
    assert len(written) == 4 and len({r["key"] for r in written}) == 2
    summaries = [(sweep / str(job) / "summary.md").read_text() for job in (0, 1)]
    gd_lines = [next(line for line in text.splitlines() if line.startswith("| gd |")) for text in summaries]
    assert all(line.startswith("| gd | 2 |") for line in gd_lines) and gd_lines[0] != gd_lines[1]
    assert "0 new rows" not in result.stdout + result.stderr


@pytest.mark.integration
def test_two_runs_on_one_results_directory_compute_every_row_once(dataset, tmp_path) -> None:
    results = tmp_path / "results"
    args = [*FAST, "sampler.num_steps=20", f"benchmark.dataset={dataset}", f"benchmark.results_dir={results}"]
    first = cli("bench", [*args, f"hydra.run.dir={tmp_path / 'a'}"], background=True)
    time.sleep(1.0)
    second = cli("bench", [*args, f"hydra.run.dir={tmp_path / 'b'}"], background=True)
    assert first.wait(600) == 0 and second.wait(600) == 0
    lines = [json.loads(line) for path in results.glob("results*.jsonl") for line in path.read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == [f"img{i}" for i in range(4)]  # each exactly once


@pytest.mark.integration
def test_a_metric_that_cannot_score_the_image_is_recorded_missing_and_the_outputs_stay(
    tmp_path, provisioned_torch_home
) -> None:
    """NIQE needs 96 px: at 32 px it used to stop the run after sampling, with nothing saved."""
    out = tmp_path / "run"
    result = cli("run", ["image_size=32", "sampler.num_steps=3", "sampler.progress=false", "~metrics.metrics.lpips",
                         f"hydra.run.dir={out}"], env={"TORCH_HOME": str(provisioned_torch_home)})
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = rows(out)
    assert row["niqe"] is None and isinstance(row["psnr"], float)
    assert "niqe not computed" in result.stderr and (out / "metrics.json").is_file()


@pytest.mark.integration
def test_merge_and_report_refuse_a_missing_folder_without_creating_it(tmp_path) -> None:
    missing = tmp_path / "typo"
    for command in (["-c", "from adir_exp.cli.bench import merge; merge()", str(missing)],
                    ["-c", "from adir_exp.cli.bench import report; report()", str(missing), "--out", str(tmp_path / "o")]):
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "no results directory" in result.stderr, result.stderr
    assert not missing.exists() and not (tmp_path / "o").exists()


def test_first_n_zero_and_an_unreadable_dataset_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="benchmark.first_n=0"):
        run_app("bench", [*FAST, f"benchmark.dataset={tmp_path}", "benchmark.first_n=0"], tmp_path / "r")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="none of the 1 image"):
        run_app("bench", [*FAST, f"benchmark.dataset={tmp_path}"], tmp_path / "r")


def test_index_and_training_counts_are_refused_by_their_names(tmp_path) -> None:
    query = subprocess.run([sys.executable, "-m", "adir_exp.cli.index", "query", "-i", str(tmp_path), "--text", "x",
                            "-k", "0"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert query.returncode == 2 and "argument -k: must be a positive integer, got 0" in query.stderr
    train = subprocess.run([sys.executable, "-m", "adir_exp.cli.train_prior", "data.epoch_length=4",
                            "data.batch_size=8", f"hydra.run.dir={tmp_path / 'run'}"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert train.returncode == 2 and "data.epoch_length=4 is smaller than data.batch_size=8" in train.stderr
    assert "Traceback" not in train.stderr
