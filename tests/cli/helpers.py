"""Running the commands in tests: in process (compose + the app's ``run``, without an interpreter's import cost)
or as the real console entry point in a subprocess; reading what they wrote."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from adir_exp.cli.config import CONF_DIR
from tests.conftest import REPO_ROOT

# Metrics that need no provisioned weights and work on tiny images.
CHEAP_METRICS = [f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "lpips_vgg", "dists", "niqe")]


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
    """``python -m adir_exp.cli.<module> args`` from the repository root (W&B offline and quiet, no terminal to
    prompt on); ``env`` values of None remove a variable."""
    command = [sys.executable, "-m", f"adir_exp.cli.{module}", *args]
    merged = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    environment = {key: value for key, value in merged.items() if value is not None}
    if background:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(command, cwd=REPO_ROOT, env=environment, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


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


@dataclass
class WandbRun:
    """What an offline W&B run recorded: its run record, its config, the last value of each logged key, every
    history row (one per ``log`` call), and the exit code of ``finish`` (None: never finished)."""

    group: str
    name: str
    job_type: str
    config: dict = field(default_factory=dict)
    logged: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    exit_code: int | None = None


def wandb_records(path: Path) -> Iterator[Any]:
    """The ``Record`` protobufs of a run log (``run-<id>.wandb``). wandb 0.31 ships no Python reader (wandb-core
    writes the file), so this reads its LevelDB log format: a 7-byte header (``:W&B``, magic, version), then
    32 KiB blocks of chunks ``crc32(type + data), length, type, data``, a record being one FULL chunk or
    FIRST, MIDDLE…, LAST; a block's tail too short for a chunk header is padding."""
    from wandb.proto.wandb_internal_pb2 import Record

    block, head = 32768, 7
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run log"
    position, payload = head, b""
    while len(data) - position >= head:
        if (space := block - position % block) < head:
            position += space
            continue
        checksum, length, kind = struct.unpack_from("<IHB", data, position)
        chunk = data[position + head: position + head + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == checksum, f"{path}: bad chunk at {position}"
        position += head + length
        payload += chunk
        if kind in (1, 4):  # FULL, LAST
            yield Record.FromString(payload)
            payload = b""


def offline_wandb_runs(root: Path) -> list[WandbRun]:
    """Every offline W&B run under ``root`` (``**/wandb/offline-run-*/run-*.wandb``), sorted by name."""
    runs = []
    for path in sorted(Path(root).glob("**/wandb/offline-run-*/run-*.wandb")):
        run = None
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = WandbRun(record.run.run_group, record.run.display_name, record.run.job_type)
                items = record.run.config.update
            elif kind == "config":
                items = record.config.update
            elif kind == "history":
                run.history.append({"/".join(item.nested_key) or item.key: json.loads(item.value_json)
                                    for item in record.history.item})
                run.logged |= run.history[-1]
                continue
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
                continue
            else:
                continue
            run.config |= {item.key: json.loads(item.value_json) for item in items if item.key != "_wandb"}
        runs.append(run)
    return sorted(runs, key=lambda r: r.name)
