"""``adir-bench`` end to end on tiny models: rows, summary, grids; kill + restart; shards; a sweep's W&B runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.cli.helpers import CHEAP_METRICS, cli, offline_wandb_runs, rows
from tests.conftest import REPO_ROOT

FAST = ["sampler.num_steps=4", "sampler.progress=false", "benchmark.size=32", *CHEAP_METRICS]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("div2k")
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(root / f"08{i:02d}.png")
    return root


def bench(args: list[str], **kwargs):
    return cli("bench", args, **kwargs)


@pytest.mark.integration
def test_tiny_benchmark_writes_rows_summary_and_grids(dataset, tmp_path) -> None:
    result = bench([*FAST, f"benchmark.dataset={dataset}", f"benchmark.results_dir={tmp_path}",
                    "method=[bicubic,gd,dps]", f"hydra.run.dir={tmp_path / 'hydra'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(rows(tmp_path)) == 12
    report = tmp_path / "hydra"
    summary = (report / "summary.md").read_text()
    assert all(f"| {m} | 4 |" in summary for m in ("bicubic", "gd", "dps")) and "psnr" in summary
    assert (report / "summary.csv").is_file()
    assert len(list((report / "grids").glob("*.png"))) == 4
    assert summary in result.stdout


@pytest.mark.integration
def test_killed_and_restarted_run_equals_uninterrupted_run(dataset, tmp_path) -> None:
    args = [*FAST, "sampler.num_steps=12", f"benchmark.dataset={dataset}", "method=[gd,bicubic]"]
    reference = tmp_path / "reference"
    assert bench([*args, f"benchmark.results_dir={reference}", f"hydra.run.dir={tmp_path / 'h1'}"]).returncode == 0

    resumed = tmp_path / "resumed"
    process = bench([*args, f"benchmark.results_dir={resumed}", f"hydra.run.dir={tmp_path / 'h2'}"], background=True)
    shard_file = resumed / "results-shard0of1.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not shard_file.exists() or len(shard_file.read_text().splitlines()) < 2):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before_kill = len(shard_file.read_text().splitlines())
    assert 2 <= written_before_kill < 8, "the kill must land mid-run"

    assert bench([*args, f"benchmark.results_dir={resumed}", f"hydra.run.dir={tmp_path / 'h3'}"]).returncode == 0
    assert rows(resumed) == rows(reference)


@pytest.mark.integration
def test_two_shards_with_submitit_local_merge_into_the_single_job_table(dataset, tmp_path) -> None:
    args = [*FAST, f"benchmark.dataset={dataset}", "method=[bicubic,gd]"]
    single = tmp_path / "single"
    assert bench([*args, f"benchmark.results_dir={single}", f"hydra.run.dir={tmp_path / 'h'}"]).returncode == 0

    sharded = tmp_path / "sharded"
    result = bench(["-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", *args,
                    f"benchmark.results_dir={sharded}", "benchmark.shard=0/2,1/2", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sharded.glob("results*.jsonl")) == ["results-shard0of2.jsonl", "results-shard1of2.jsonl"]
    assert rows(sharded) == rows(single)

    merged = subprocess.run([sys.executable, "-c", "from adir_exp.cli.bench import merge; merge()", str(sharded)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    strip = lambda text: [line.rsplit("|", 2)[0] for line in text.splitlines()]  # drop the timing column
    assert strip((sharded / "summary.md").read_text()) == strip((tmp_path / "h" / "summary.md").read_text())


@pytest.mark.integration
def test_a_two_job_sweep_logs_two_finished_offline_wandb_runs_in_one_group(dataset, tmp_path) -> None:
    """Each job of ``-m`` is a W&B run of its own (the basic launcher runs both in one process), named after its
    overrides, in the sweep's group, with the resolved config, the summary and the means."""
    sweep = tmp_path / "2026-12-03_10-00-00"
    result = bench(["-m", *FAST, "logger=wandb", f"benchmark.dataset={dataset}", "benchmark.first_n=2",
                    f"benchmark.results_dir={tmp_path / 'r'}", "method=[gd]", "sampler.guidance_scale=0,50",
                    f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    runs = offline_wandb_runs(sweep)
    assert [len(list((sweep / job / "wandb").glob("offline-run-*"))) for job in ("0", "1")] == [1, 1]
    assert {run.group for run in runs} == {"bench-2026-12-03_10-00-00"}
    assert [run.job_type for run in runs] == ["bench", "bench"] and [run.exit_code for run in runs] == [0, 0]
    zero, fifty = runs
    assert "sampler.guidance_scale=0," in zero.name and "sampler.guidance_scale=50," in fifty.name
    assert "logger" not in zero.name and str(dataset) not in zero.name  # excluded: logging switches and paths
    assert [run.config["sampler"]["guidance_scale"] for run in runs] == [0, 50]
    assert all(run.config["benchmark"]["dataset"] == str(dataset) for run in runs)
    assert all("gd/psnr_mean" in run.logged and run.logged["summary/_type"] == "table-file" for run in runs)
    assert zero.logged["gd/psnr_mean"] != fifty.logged["gd/psnr_mean"]
    assert (sweep / "1" / "summary.md").is_file()


@pytest.mark.integration
def test_mini_repro_runs_every_method_on_tiles_and_reports_paired_differences(
    isolated_home, provisioned_torch_home, monkeypatch, tmp_path
) -> None:
    """The mini-reproduction's path on the shipped prior and the bundled collection (index built on first use),
    cut to 2 tiles, 3 sampling steps and 2 LoRA iterations (the adaptation loss's LPIPS needs AlexNet)."""
    monkeypatch.setenv("TORCH_HOME", str(provisioned_torch_home))
    result = bench(["experiment=mini_repro_deblur", "metrics=default", *CHEAP_METRICS, "sampler.num_steps=3", "adaptation.iterations=2",
                    "benchmark.first_n=1", "benchmark.tiles.per_image=2", f"benchmark.results_dir={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'hydra'}"])
    assert result.returncode == 0, result.stderr[-3000:]
    found = rows(tmp_path)
    methods = {"measurement", "gd", "adir_self", "adir_knn", "adir_random", "dps"}
    assert {r["method"] for r in found} == methods and {r["image"] for r in found} == {"Blinds-f7aac0dc_t0", "Blinds-f7aac0dc_t1"}
    assert (isolated_home / "indexes" / "bundled-efficientnet_lite0" / "meta.json").is_file()
    report = subprocess.run([sys.executable, "-c", "from adir_exp.cli.bench import report; report()", str(tmp_path),
                             "--out", str(tmp_path / "report"), "--metrics", "psnr", "--resamples", "100"],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "adir_knn − adir_random" in text and "gd − measurement" in text
    assert (tmp_path / "report" / "differences.png").stat().st_size > 1000


def test_the_chosen_summary_metric_is_returned_for_sweepers(dataset, tmp_path) -> None:
    from adir_exp.cli.bench import optimized_value
    from adir_exp.cli.config import ConfigError
    from tests.cli.helpers import run_app

    table = run_app("bench", [*FAST, "method=[bicubic,gd]", f"benchmark.dataset={dataset}", "benchmark.first_n=2",
                              f"benchmark.results_dir={tmp_path / 'r'}"], tmp_path / "report")  # fmt: skip
    gd = next(row for row in table if row["method"] == "gd")
    assert optimized_value(table, "gd/psnr") == gd["psnr_mean"]
    assert optimized_value(table, None) is None
    with pytest.raises(ConfigError, match="choose one of: bicubic/psnr"):
        optimized_value(table, "adir_knn/lpips")


@pytest.mark.integration
def test_an_optuna_search_over_a_setting_finds_the_best_trial(dataset, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    result = bench(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.direction=maximize",
                    "hydra.sweeper.sampler.seed=0", "sampler.guidance_scale=interval(0.0,30.0)", "optimized_metric=gd/psnr",
                    *FAST, "method=[gd]", f"benchmark.dataset={dataset}", "benchmark.first_n=1",
                    f"benchmark.results_dir={tmp_path / 'r'}", f"hydra.sweep.dir={sweep}"])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["name"] == "optuna" and "sampler.guidance_scale" in best["best_params"]
    assert isinstance(best["best_value"], float)
