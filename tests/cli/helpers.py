"""Running the commands in tests: in process (compose + the app's ``run``, without an interpreter's import cost)
or as the real console entry point in a subprocess; reading what they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from adir_exp.cli.config import CONF_DIR
from tests.conftest import REPO_ROOT

# Metrics that need no provisioned weights and work on tiny images.
CHEAP_METRICS = [f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "niqe")]


def compose_app(app: str, overrides: list[str], out: Path):
    """The composed config as the app sees it, Hydra's runtime output directory set to ``out``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=app, overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_app(app: str, overrides: list[str], out: Path) -> Any:
    """``adir-run`` / ``adir-bench`` in this process."""
    from adir_exp.cli import bench, run

    return {"run": run.run, "bench": bench.run}[app](compose_app(app, overrides, out))


def cli(module: str, args: list[str], env: dict | None = None, background: bool = False, timeout: int = 600):
    """``python -m adir_exp.cli.<module> args`` from the repository root (W&B offline and quiet); ``env`` values
    of None remove a variable."""
    command = [sys.executable, "-m", f"adir_exp.cli.{module}", *args]
    merged = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    environment = {key: value for key, value in merged.items() if value is not None}
    if background:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=timeout)


def stored(results_dir: Path, image_id: str, name: str) -> Path:
    """The one stored output ``<name>-<key>.png`` of an image (several settings would make this ambiguous)."""
    (path,) = sorted((Path(results_dir) / "images" / image_id).glob(f"{name}-*.png"))
    return path


def rows(results_dir: Path) -> list[dict]:
    """Every result row of a directory, sorted, without the timing."""
    out = []
    for path in sorted(Path(results_dir).glob("results*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines()]
    for row in out:
        row.pop("seconds")
    return sorted(out, key=lambda r: (r["method"], r["image"]))
