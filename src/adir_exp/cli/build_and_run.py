"""What ``adir-run`` and ``adir-bench`` share: :func:`build` the objects from the composed config (only what the
selected methods need, all checked before the first image), :func:`execute` them through one :class:`Runner` and
report (the summary of this configuration's rows, grids, the paper's numbers beside ours), then :func:`publish`
the report to the logger."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from adir_exp.cli.config import (
    ConfigError,
    digest,
    instantiate_node,
    resolved,
    selected,
)
from adir_exp.evaluation.results import Report

if TYPE_CHECKING:
    import torch
    from lightning.pytorch.loggers import Logger

    from adir_exp.methods.base import Method
    from adir_exp.metrics import MetricSuite
    from adir_exp.operators import Physics
    from adir_exp.priors.base import Prior
    from adir_exp.retrieval.query import Retriever

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    """Everything one run needs, built from the config by :func:`build`: what runs after it (:func:`execute`,
    :func:`publish`) never reads the config."""

    physics: Physics
    prior: Prior | None  # None when no selected method uses one
    methods: dict[str, Method]  # the selected methods, in the order of the table
    keys: dict[str, str]  # row key per method
    problem_key: str  # digest of what makes y: task, preprocessing, seed
    retriever: Retriever | None  # None when no selected method searches the collection
    metrics: MetricSuite
    device: torch.device
    logger: Logger  # a Lightning logger; W&B runs are created only when the report is logged
    seed: int  # the run's seed (each image's own seeds derive from it)
    task: str  # the task's name (in the adapters' metadata)
    experiment_name: str | None  # names the paper's table to put beside ours, if it is one
    config: dict[str, Any]  # the resolved config, as the logger records it


def build(cfg: DictConfig, preprocessing: dict[str, Any], shapes: Collection[tuple[int, ...]], size_key: str
          ) -> Experiment:
    """``preprocessing`` says how ground truths are made from files; it enters the row keys. ``shapes`` are the
    ground truths' shapes, checked against the task's operator before the model is built (``size_key``: the
    setting that makes them). The caller has validated ``cfg`` (:func:`~adir_exp.cli.config.validate`) before
    reading any image."""
    from adir_exp.cli.tracking import open_logger
    from adir_exp.operators import OperatorInputError
    from adir_exp.runtime import DeviceError, resolve_device

    # An experiment may pre-set options of methods it does not select (methods.dps.sampler.step_size): only the
    # methods the `method` group composed (they have a _target_) run.
    composed = cfg.get("methods") or {}
    chosen = [name for name, node in composed.items() if "_target_" in node]
    if not chosen:
        raise ConfigError("no method selected: choose some, e.g. method=gd or method=[bicubic,gd,adir_knn]")
    if unselected := [name for name in composed if name not in chosen]:
        log.info("settings of unselected method(s) %s ignored", ", ".join(unselected))
    try:
        device = resolve_device(cfg.device)
    except DeviceError as error:
        raise ConfigError(f"device: {error}") from error
    physics = instantiate_node(cfg.task.physics, "task.physics")
    for shape in shapes:
        try:
            physics.operator.measurement_shape(shape)
        except OperatorInputError as error:
            raise ConfigError(f"{size_key}: task={cfg.task.name} cannot take the {shape[-2]}×{shape[-1]} images: "
                              f"{error}") from error
    trainer = instantiate_node(cfg.trainer, "trainer")  # a partial: the Trainer of every LoRA fit (conf/trainer/)
    adapting = {name for name in chosen if cfg.methods[name].get("adaptation") is not None}
    methods = {name: instantiate_node(cfg.methods[name], f"methods.{name}",
                                      **({"adaptation": {"trainer": trainer}} if name in adapting else {}))
               for name in chosen}
    needing = [name for name, method in methods.items() if method.needs_retriever]
    if needing and not cfg.retrieval:
        raise ConfigError(
            f"method(s) {', '.join(needing)} adapt on images from a collection: select retrieval=knn (with a "
            f"built index, docs/retrieval.md) or retrieval=bundled"
        )
    prior = instantiate_node(cfg.model, "model").to(device) if any(m.uses_prior for m in methods.values()) else None
    retriever = instantiate_node(cfg.retrieval, "retrieval") if needing else None
    for name, method in methods.items():
        try:
            method.check(prior, physics, retriever)
        except (ValueError, FileNotFoundError) as error:
            raise ConfigError(f"methods.{name}: {error}") from error
    metrics = instantiate_node(cfg.metrics, "metrics")
    logger = open_logger(cfg.logger)
    problem = {"task": resolved(cfg.task), "preprocessing": preprocessing, "seed": cfg.seed}
    scoring = resolved(cfg.metrics)  # other metric settings (LPIPS net, crop border) make other rows
    metric_weights = metrics.fingerprint()  # and so do other metric weight files (one replaced in place)
    weights = prior.fingerprint() if prior is not None else None
    keys = {}
    for name, method in methods.items():
        settings = {**problem, "metrics": scoring, "metric_weights": metric_weights,
                    "method": resolved(cfg.methods[name])}
        if method.uses_prior:
            settings |= {"model": resolved(cfg.model), "weights": weights}
        if method.needs_retriever:
            settings["retrieval"] = resolved(cfg.retrieval)
        if method.provenance:  # e.g. the adapter bank's digest: its path alone says nothing of its content
            settings["provenance"] = method.provenance
        keys[name] = digest(settings)
    return Experiment(
        physics=physics, prior=prior, methods=methods, keys=keys, problem_key=digest(problem), retriever=retriever,
        metrics=metrics, device=device, logger=logger, seed=cfg.seed, task=cfg.task.name,
        experiment_name=selected(cfg, "experiment_name"), config=resolved(cfg),
    )


def execute(
    experiment: Experiment,
    images: list[tuple[str, str, Any]],
    store_dir: Path,
    report_dir: Path,
    shard: tuple[int, int] = (0, 1),
    save_adapters: bool = False,
    grid_images: int = 4,
) -> Report:
    """Run every unfinished pair of ``images`` ((id, content digest, image) triples), then write this
    configuration's summary and grids into ``report_dir``."""
    from adir_exp.evaluation.results import (
        ResultStore,
        latest_content,
        paper_numbers,
        summarise,
        table_metrics,
        write_summary,
    )
    from adir_exp.evaluation.runner import (
        Runner,
        adaptation_loss_path,
        read_adaptation_losses,
        write_grid,
    )

    store = ResultStore(store_dir, shard)
    runner = Runner(
        methods=experiment.methods, keys=experiment.keys, problem_key=experiment.problem_key,
        physics=experiment.physics, prior=experiment.prior, metrics=experiment.metrics, store=store,
        output_dir=store_dir, seed=experiment.seed, device=experiment.device, task=experiment.task,
        retriever=experiment.retriever, save_adapters=save_adapters,
    )
    progress = runner.run(images)
    log.info("%d new rows, %d already done in %s%s", progress.written, progress.already_done, store_dir,
             f", {progress.busy} being computed by another process" if progress.busy else "")

    def base(value: str) -> str:  # "adir_knn@50": the adir_knn fit after 50 steps (adaptation.reconstruct_at)
        return value.split("@")[0]

    sources = {image_id: source for image_id, source, _ in images}  # this run's images: their current content only
    stored = latest_content([r for r in store.rows() if sources.get(r["image"], r.get("source")) == r.get("source")])
    current = [r for r in stored if experiment.keys.get(base(r["method"])) == base(r.get("key", ""))]
    order = list(experiment.methods)
    current.sort(key=lambda r: (order.index(base(r["method"])), r.get("iterations", float("inf"))))
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "keys.json").write_text(json.dumps({"results_dir": str(store_dir), "keys": experiment.keys},
                                                      indent=1))  # which rows of the store this report covers
    paper = paper_numbers(experiment.experiment_name)
    metrics = table_metrics(current, paper)
    table = summarise(current, metrics, paper)
    _, summary_md = write_summary(table, metrics, report_dir)
    grids = [
        path for image_id, *_ in images[:grid_images]
        if (path := write_grid(store_dir, image_id, experiment.problem_key, experiment.keys,
                               report_dir / "grids" / f"{image_id}.png"))
    ]
    losses = {f"{row['image']}/{row['method']}": read_adaptation_losses(path) for row in current
              if (path := adaptation_loss_path(store_dir, row["image"], row["method"], row["key"])).is_file()}
    return Report(table, summary_md, grids, store_dir, report_dir, order, losses)


def publish(experiment: Experiment, report: Report) -> None:
    """Send the report to the configured logger, then print it. Call it last: every local result is written before,
    so a failing logger costs nothing but a warning."""
    from adir_exp.cli.tracking import log_report

    log_report(experiment.logger, report, experiment.config)
    print(f"\n{report.summary_md.read_text()}\nsummary: {report.summary_md}\nrows and images: {report.store_dir}")
    if report.grids:
        print(f"grids ({' | '.join(['GT', 'y', *report.methods])}): {', '.join(str(g) for g in report.grids)}")
