"""``adir-bank``: build the adapter bank (conf/bank.yaml, docs/bank.md) that ``method=adir_bank`` reconstructs with.

A Hydra app like ``adir-bench`` (one job per run, ``-m`` for shards); ``adir-bank build …``, the spelling of the
issue, is the same command.

    adir-bank experiment=domain_shift_sr4_astronomy bank.num_neighbourhoods=8   # the experiment's prior, index, LoRA
    adir-bank -m hydra/launcher=submitit_local bank.shard=0/2,1/2 experiment=...  # two jobs share the neighbourhoods
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from adir_exp.cli.config import (
    CONFIG_PATH,
    ConfigError,
    instantiate_node,
    reported_as,
    validate,
)
from adir_exp.cli.console import quiet_console
from adir_exp.paths import configure_environment

configure_environment()

log = logging.getLogger(__name__)


def run(cfg: DictConfig):
    """Fit this shard's unfinished neighbourhoods of the configured bank; returns the build report."""
    from adir_exp.bank import BankError, NeighbourhoodError, build_bank
    from adir_exp.evaluation.benchmark_images import parse_shard
    from adir_exp.runtime import resolve_device

    quiet_console()
    validate(cfg)
    if not cfg.retrieval:
        raise ConfigError("adir-bank partitions a retrieval index: select retrieval=knn (with retrieval.index_dir) or "
                          "retrieval=bundled, or an experiment that sets one")
    device = resolve_device(cfg.device)
    physics = instantiate_node(cfg.task.physics, "task.physics")
    fit = instantiate_node(cfg.adaptation, "adaptation")
    prior = instantiate_node(cfg.model, "model").to(device)
    try:
        prior.objective(physics)  # its weights (LPIPS) are there before the first fit
    except (ValueError, FileNotFoundError) as error:
        raise ConfigError(f"model: {error}") from error
    retriever = instantiate_node(cfg.retrieval, "retrieval")
    try:
        report = build_bank(cfg.bank.dir, retriever.index, retriever.encoder.name, prior, fit, physics, cfg.task.name,
                            device, cfg.bank.num_neighbourhoods, cfg.bank.seed, parse_shard(cfg.bank.shard))
    except (BankError, NeighbourhoodError) as error:
        raise ConfigError(f"bank: {error}") from error
    state = "complete" if report.complete else "incomplete: other shards still fitting (or rerun to resume)"
    print(f"adapter bank {report.directory} ({state}): {len(report.fitted)} neighbourhood(s) fitted now, "
          f"{len(report.already_done)} already done")
    return report


@hydra.main(config_path=CONFIG_PATH, config_name="bank", version_base="1.3")
def build(cfg: DictConfig) -> None:
    with reported_as("adir-bank"):
        run(cfg)


def main() -> None:
    if sys.argv[1:2] == ["build"]:  # `adir-bank build …` reads as the issue wrote it: the same app
        del sys.argv[1]
    build()


if __name__ == "__main__":
    main()
