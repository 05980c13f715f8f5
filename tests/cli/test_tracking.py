"""The W&B logger's settings as composed (offline, group, name, job type), the credential check that keeps an
online run from prompting, and how a failing or interrupted logger leaves the results; the runs themselves are in
test_run.py and test_bench.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from hydra.types import RunMode

from adir_exp.cli.config import wandb_group
from adir_exp.cli.tracking import log_report, wandb_credentials
from adir_exp.evaluation.results import Report
from adir_exp.evaluation.runner import read_adaptation_losses
from tests.cli.helpers import (
    CHEAP_METRICS,
    cli,
    compose_app,
    offline_wandb_runs,
    run_app,
)


def test_wandb_logger_is_offline_named_after_the_overrides_and_grouped_by_experiment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_app("bench", ["logger=wandb", "sampler.guidance_scale=3", "benchmark.dataset=/data/x"], tmp_path)
    logger = cfg.logger
    assert (logger.offline, logger.group, logger.job_type) == (True, "adm_tiny_sr4", "bench")
    assert logger.name == "sampler.guidance_scale=3"  # no path, no logger switch
    assert compose_app("run", ["logger=wandb"], tmp_path).logger.name == "adm_tiny_sr4"  # no override: the experiment
    experiment = compose_app("bench", ["logger=wandb", "experiment=table2_gd_sr8"], tmp_path).logger
    assert (experiment.group, experiment.name) == ("table2_gd_sr8", "experiment=table2_gd_sr8")


@pytest.mark.parametrize(("mode", "offline"), [("offline", True), ("dryrun", True), ("online", False), ("disabled", False)])
def test_the_users_wandb_mode_decides_the_default(mode, offline, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", mode)
    assert compose_app("run", ["logger=wandb"], tmp_path).logger.offline is offline


def test_the_jobs_of_a_sweep_share_a_group_named_after_the_sweep(tmp_path) -> None:
    cfg = compose_app("bench", ["logger=wandb"], tmp_path)
    assert wandb_group(RunMode.MULTIRUN, "bench", "outputs/bench_multirun/2026-12-03_10-00-00", _root_=cfg) == (
        "bench-2026-12-03_10-00-00")


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC", "WANDB_CONFIG_DIR", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_no_credentials_in_an_empty_home(empty_home) -> None:
    assert not wandb_credentials()


def test_credentials_are_found_where_wandb_login_puts_them(empty_home, monkeypatch) -> None:
    (empty_home / ".netrc").write_text("machine example.org login user password secret\n")
    assert not wandb_credentials()  # another host's entry
    (empty_home / ".netrc").write_text("machine api.wandb.ai login user password " + "a" * 40 + "\n")
    assert wandb_credentials()
    (empty_home / ".netrc").unlink()
    settings = empty_home / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text("[default]\napi_key = " + "b" * 40 + "\n")
    assert wandb_credentials()
    settings.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "c" * 40)
    assert wandb_credentials()


class Run:
    def __init__(self) -> None:
        self.exit_codes: list[int] = []

    def finish(self, exit_code: int = 0) -> None:
        self.exit_codes.append(exit_code)


class FailingLogger:
    """A logger whose service fails once the run exists."""

    def __init__(self) -> None:
        self.experiment = Run()

    def log_hyperparams(self, params: dict) -> None:
        raise RuntimeError("W&B is down\nwhile retrying")


class InterruptedLogger:
    """A logger interrupted as wandb's key prompt is (Ctrl-C, or end of input on a terminal)."""

    def __init__(self, **settings) -> None:
        pass

    @property
    def experiment(self) -> None:
        raise KeyboardInterrupt


def test_a_failing_logger_warns_in_one_line_and_its_run_is_still_finished(tmp_path, caplog) -> None:
    logger = FailingLogger()
    report = Report([], tmp_path / "summary.md", [], tmp_path, tmp_path, ["gd"])
    with caplog.at_level(logging.WARNING, logger="adir_exp.cli.tracking"):
        log_report(logger, report, {})
    assert logger.experiment.exit_codes == [1]  # finished, marked failed: the next job gets a run of its own
    (warning,) = caplog.messages
    assert "W&B is down while retrying" in warning and "local results" in warning


def test_every_result_is_written_before_the_logger_is_called(tmp_path) -> None:
    overrides = ["image_size=32", "sampler.num_steps=2", "sampler.progress=false", *CHEAP_METRICS,
                 f"logger._target_={__name__}.InterruptedLogger"]
    with pytest.raises(KeyboardInterrupt):
        run_app("run", overrides, tmp_path)
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "summary.md").is_file()


@pytest.mark.integration
def test_the_wandb_run_holds_each_images_adaptation_loss_curve(tmp_path) -> None:
    """An offline W&B run of adir-bench with an adapting method (two images, three LoRA steps on the tiny ADM,
    ε-loss only): its history holds every step of each image's fit, the values the pair's CSV file holds."""
    from PIL import Image

    dataset = tmp_path / "images"
    dataset.mkdir()
    rng = np.random.default_rng(2)
    for name in ("0801", "0802"):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(dataset / f"{name}.png")
    store, run_dir = tmp_path / "rows", tmp_path / "run"
    adapting = ["method=[adir_self]", "adaptation.iterations=3", "adaptation.batch_size=1", "adaptation.progress=false",
                "model.objective.lpips_weight=0"]
    result = cli("bench", [*adapting, "logger=wandb", "sampler.num_steps=2", "sampler.progress=false",
                           "benchmark.size=32", *CHEAP_METRICS, f"benchmark.dataset={dataset}",
                           f"benchmark.results_dir={store}", f"hydra.run.dir={run_dir}"], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = offline_wandb_runs(run_dir)
    assert run.exit_code == 0
    for image in ("0801", "0802"):
        key = f"adapt/{image}/adir_self/loss"
        series = [(row["trainer/global_step"], row[key]) for row in run.history if key in row]
        (csv_file,) = (store / "images" / image).glob("adir_self-*_adaptation_loss.csv")
        assert series == [(step, terms["loss"]) for step, terms in enumerate(read_adaptation_losses(csv_file), 1)]
        assert len(series) == 3


def test_adaptation_losses_are_columns_of_the_csv_loggers_metrics_by_step(tmp_path) -> None:
    import csv

    from lightning.pytorch.loggers import CSVLogger

    losses = {"0801/adir_self": [{"loss": 0.5, "eps_mse": 0.4}, {"loss": 0.25, "eps_mse": 0.2}],
              "0802/adir_knn": [{"loss": 0.75, "eps_mse": 0.7}]}
    report = Report([], tmp_path / "summary.md", [], tmp_path, tmp_path, ["adir_self", "adir_knn"], losses)
    log_report(CSVLogger(tmp_path, name="logs", version=""), report, {})
    with open(tmp_path / "logs" / "metrics.csv") as handle:
        logged = [(r["step"], r["adapt/0801/adir_self/loss"], r["adapt/0802/adir_knn/loss"])
                  for r in csv.DictReader(handle)]
    assert logged == [("1", "0.5", "0.75"), ("2", "0.25", "")]  # the total only: components stay in the pairs' files
