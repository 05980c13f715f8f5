"""The experiment logger of ``adir-run`` and ``adir-bench`` (the ``logger`` group): one W&B run per job, finished
when the job's report is logged, never a prompt or a hang when W&B cannot be reached (docs/logging.md)."""

from __future__ import annotations

import configparser
import logging
import netrc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from omegaconf import DictConfig

from adir_exp.cli.config import instantiate_node

if TYPE_CHECKING:
    from adir_exp.evaluation.results import Report

log = logging.getLogger(__name__)

NOT_ONLINE = ("offline", "dryrun", "disabled")


def open_logger(node: DictConfig) -> Any:
    """The configured Lightning logger, built before any work so a wrong setting is refused early. An online W&B
    logger without credentials would prompt (on a terminal) or fail: it logs offline instead, with one warning."""
    from lightning.pytorch.loggers import WandbLogger

    logger = instantiate_node(node, "logger")
    if not isinstance(logger, WandbLogger) or wandb_mode(node) in NOT_ONLINE or wandb_credentials():
        return logger
    where = Path(node.save_dir or ".") / "wandb"
    log.warning("W&B: logging offline to %s, not online: no API key (set WANDB_API_KEY or run `wandb login`); "
                "upload it later with `wandb sync %s/offline-run-*`", where, where)
    return instantiate_node(node, "logger", offline=True, mode="offline")


def wandb_mode(node: DictConfig) -> str:
    """The mode ``wandb.init`` will use: ``logger.offline``, else ``logger.mode``, else ``$WANDB_MODE``."""
    if node.get("offline"):
        return "offline"
    return node.get("mode") or os.environ.get("WANDB_MODE") or "online"


def wandb_credentials() -> bool:
    """Whether W&B finds credentials without prompting, in the places ``wandb.login`` reads: ``$WANDB_API_KEY``, an
    identity token file, the ``api_key`` of W&B's settings file, a ``.netrc`` entry for the server (what ``wandb
    login`` writes). A ``.netrc`` that cannot be parsed counts as found: W&B decides."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    settings = configparser.ConfigParser()
    config_dir = Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    try:
        settings.read(config_dir / "settings")
        if settings.get("default", "api_key", fallback=None):
            return True
    except configparser.Error:
        pass
    netrc_file = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if not netrc_file.is_file():
        return False
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(netrc_file).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return True


def log_report(logger: Any, report: Report, config: dict) -> None:
    """Send the resolved config, the summary table, the grids, each adapting pair's loss curve and each method's
    means to ``logger``. The local results are already written, so a failure only warns; a W&B run is finished
    whatever happens, so the next job of a sweep (same process) gets a run of its own."""
    run, failed = None, True
    try:
        run = getattr(logger, "experiment", None)  # W&B: creates this job's run
        logger.log_hyperparams(config)
        measured = [row for row in report.table if row["n"]]
        if hasattr(logger, "log_table") and report.table:
            columns = list(report.table[0])
            logger.log_table(key="summary", columns=columns, data=[[row[c] for c in columns] for row in report.table])
        if hasattr(logger, "log_image") and report.grids:
            logger.log_image(key="grids", images=[str(g) for g in report.grids], caption=[g.stem for g in report.grids])
        if report.adaptation_losses:
            log_adaptation_losses(logger, report.adaptation_losses)
        means = {f"{row['method']}/{key}": value for row in measured for key, value in row.items()
                 if key.endswith("_mean") and value is not None}
        if means:
            logger.log_metrics(means)
        logger.finalize("success")
        failed = False
    except Exception as error:  # a broken W&B must never cost the local results
        log.warning("logger %s failed (%s); local results in %s are complete", type(logger).__name__,
                    one_line(error), report.report_dir)
    finally:
        if run is not None and hasattr(run, "finish"):
            try:
                run.finish(exit_code=int(failed))
            except Exception as error:
                log.warning("W&B run could not be finished (%s); local results in %s are complete", one_line(error),
                            report.report_dir)


def log_adaptation_losses(logger: Any, losses: dict[str, list[dict[str, float]]]) -> None:
    """Each adapting pair's loss as a series ``adapt/<image>/<method>/loss`` over the fit's steps (1, 2, …), one
    call per step. W&B draws each as a native line chart against ``trainer/global_step`` (smoothing, zoom), and the
    jobs of a sweep share the key, so one panel overlays an image's curve across the swept settings; the CSV
    logger writes them as columns of its metrics.csv. The per-step components stay in the pairs' CSV files."""
    for step in range(max(len(terms) for terms in losses.values())):
        logger.log_metrics({f"adapt/{pair}/loss": terms[step]["loss"] for pair, terms in losses.items()
                            if step < len(terms)}, step=step + 1)


def one_line(error: Exception) -> str:
    """W&B's network errors span lines; a warning is one."""
    return " ".join(str(error).split())
