"""The W&B logger's settings as composed (offline, group, name, job type), the credential check that keeps an
online run from prompting, and how a failing or interrupted logger leaves the results; the runs themselves are in
test_run.py and test_bench.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra.types import RunMode

from adir_exp.cli.config import wandb_group
from adir_exp.cli.tracking import log_report, wandb_credentials
from adir_exp.evaluation.results import Report
from tests.cli.helpers import CHEAP_METRICS, compose_app, run_app


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
