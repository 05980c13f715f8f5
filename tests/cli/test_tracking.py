"""The W&B logger's settings as composed (offline, group, name, job type)."""

from __future__ import annotations

import pytest
from hydra.types import RunMode

from adir_exp.cli.config import wandb_group
from tests.cli.helpers import compose_app


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

