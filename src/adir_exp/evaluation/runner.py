"""Methods × images → result rows, the one path ``adir-run`` (one image) and ``adir-bench`` (a table) share.

Each image is measured once (:func:`~adir_exp.problem.measure`); every method reconstructs that same problem.
Per finished pair the runner writes the outputs first (the estimate, and what adaptation produced), then scores
them, then appends the row, so a metric that fails or a kill loses nothing already computed. Output files carry
the first 8 digits of their key (``gd-1a2b3c4d.png``; ground truth and y the problem's), so runs of other
settings sharing the directory never overwrite them; :func:`write_grid` puts the current ones side by side.
"""

from __future__ import annotations

import csv
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from adir_exp.adaptation.artifacts import AdapterMetadata, save_adapter
from adir_exp.data.images import image_grid, load_image, save_image, to_image_range
from adir_exp.evaluation.results import ResultStore
from adir_exp.methods.base import Estimate, Method
from adir_exp.metrics import MetricSuite
from adir_exp.operators import Physics
from adir_exp.paths import naming_failures
from adir_exp.priors.base import Prior
from adir_exp.problem import Problem, measure

if TYPE_CHECKING:
    from adir_exp.retrieval.query import Retriever

log = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; the message says at which pair and where the finished rows are."""


@dataclass
class RunReport:
    written: int = 0
    already_done: int = 0
    busy: int = 0  # pairs another process was computing
    rows: list[dict] = field(default_factory=list)


@dataclass
class Runner:
    """``keys`` holds each method's row key (:mod:`adir_exp.evaluation.results`); ``task`` names the task in the
    adapters' metadata. Outputs go to ``output_dir/images/<image id>/``."""

    methods: dict[str, Method]
    keys: dict[str, str]
    problem_key: str
    physics: Physics
    prior: Prior | None
    metrics: MetricSuite
    store: ResultStore
    output_dir: Path
    seed: int
    device: torch.device
    task: str
    retriever: Retriever | None = None
    save_adapters: bool = False
    progress: bool = True

    def run(self, images: Sequence[tuple[str, str, torch.Tensor]]) -> RunReport:
        """Every unfinished (method, image) pair of ``images`` ((id, content digest of its file, [0, 1] image)
        triples), image by image. A Ctrl-C (or Lightning's exit on one, during a fit) becomes
        :class:`RunInterrupted`, which says where the run stopped; every finished row is already stored."""
        done = self.store.done()
        todo = [(image_id, source, image, [m for m in self.methods if (m, image_id, self.keys[m], source) not in done])
                for image_id, source, image in images]
        report = RunReport(already_done=sum(len(self.methods) - len(p) for *_, p in todo))
        bar = tqdm(total=sum(len(p) for *_, p in todo), desc="methods × images", unit="pair",
                   disable=not self.progress, dynamic_ncols=True)
        where = "before the first pair"
        try:
            with bar:
                for image_id, source, image, pending in todo:
                    if not pending:
                        continue
                    where = f"measuring {image_id}"
                    problem = measure(image_id, image, self.physics, self.seed, self.device, source)
                    image_dir = self.output_dir / "images" / image_id
                    save_image(image, image_dir / output_name("ground_truth", self.problem_key))
                    save_image(to_image_range(problem.y), image_dir / output_name("measurement", self.problem_key))
                    for name in pending:
                        where = f"{name} on {image_id}"
                        bar.set_postfix_str(where)
                        row = self.run_pair(name, problem, source, image_dir)
                        gc.collect()  # a fit's Trainer holds reference cycles: free its copy of the network now
                        if row is None:
                            report.busy += 1
                        else:
                            report.written += 1
                            report.rows.append(row)
                        bar.update()
        except (KeyboardInterrupt, SystemExit) as stop:
            if isinstance(stop, SystemExit) and stop.code in (0, None):
                raise
            finished = report.written + report.already_done
            raise RunInterrupted(
                f"stopped at {where}; {finished} of {len(self.methods) * len(images)} pairs are done, their rows "
                f"kept in {self.store.directory}"
            ) from None
        return report

    def run_pair(self, name: str, problem: Problem, source: str, image_dir: Path) -> dict | None:
        """One method on one problem (``source``: its file's content digest): outputs, then metrics, then the
        row; None if another process has it."""
        key = (name, problem.image_id, self.keys[name], source)
        with self.store.claim(key) as mine:
            if not mine:
                return None
            start = time.perf_counter()
            estimate = self.methods[name].reconstruct(problem, self.prior, self.retriever)
            seconds = time.perf_counter() - start
            self.save_outputs(name, estimate, problem, image_dir)
            row = {"method": name, "image": problem.image_id, "source": source, "seed": self.seed,
                   "key": self.keys[name], "seconds": seconds, **self.metrics.scores(estimate.image, problem.ground_truth)}
            if estimate.adaptation_images:
                row["adaptation_images"] = estimate.adaptation_images
            if estimate.details:
                row["details"] = estimate.details
            for step, snapshot in estimate.snapshots.items():  # the same fit after fewer steps: its own rows
                self.store.append({**row, "method": f"{name}@{step}", "key": f"{self.keys[name]}@{step}",
                                   "iterations": step, **self.metrics.scores(snapshot, problem.ground_truth)})
            self.store.append(row)
        scores = ", ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds")
        log.info("%s %s: %s (%.1f s)", problem.image_id, name, scores, seconds)
        return row

    def save_outputs(self, name: str, estimate: Estimate, problem: Problem, image_dir: Path) -> None:
        stem = output_name(name, self.keys[name], suffix="")
        save_image(estimate.image, image_dir / f"{stem}.png")
        for step, snapshot in estimate.snapshots.items():
            save_image(snapshot, image_dir / f"{stem}_steps" / f"step_{step:06d}.png")
        if estimate.losses:
            losses = adaptation_loss_path(self.output_dir, problem.image_id, name, self.keys[name])
            with naming_failures(losses), open(losses, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["step", *estimate.losses[0]])
                writer.writeheader()
                writer.writerows({"step": step, **terms} for step, terms in enumerate(estimate.losses, 1))
        if self.save_adapters and estimate.adapter is not None:
            network, lora = estimate.adapter
            metadata = AdapterMetadata(self.prior.name, self.task, tuple(estimate.adaptation_images), self.seed, lora)
            path = save_adapter(network, image_dir / f"{stem}_adapter", metadata)
            log.info("adapter of %s on %s: %s", name, problem.image_id, path)


def output_name(name: str, key: str, suffix: str = ".png") -> str:
    return f"{name}-{key[:8]}{suffix}"


def adaptation_loss_path(store_dir: Path, image_id: str, name: str, key: str) -> Path:
    """Where a pair's adaptation loss terms per step are stored (a CSV: step, loss, its components)."""
    return Path(store_dir) / "images" / image_id / output_name(name, key, suffix="_adaptation_loss.csv")


def read_adaptation_losses(path: Path) -> list[dict[str, float]]:
    """The loss terms of every step, first step first, as :meth:`Runner.save_outputs` wrote them."""
    with open(path, newline="") as handle:
        return [{term: float(value) for term, value in row.items() if term != "step"} for row in csv.DictReader(handle)]


def output_paths(store_dir: Path, image_id: str, problem_key: str, keys: dict[str, str]) -> dict[str, Path]:
    """Where the ground truth, y and each method's estimate of one image are stored."""
    image_dir = store_dir / "images" / image_id
    names = {"GT": ("ground_truth", problem_key), "y": ("measurement", problem_key)}
    names |= {method: (method, key) for method, key in keys.items()}
    return {label: image_dir / output_name(name, key) for label, (name, key) in names.items()}


def write_grid(store_dir: Path, image_id: str, problem_key: str, keys: dict[str, str], path: Path) -> Path | None:
    """GT | y | methods for one image at ``path``, from the stored outputs (None until all are there)."""
    paths = output_paths(store_dir, image_id, problem_key, keys)
    if not all(p.exists() for p in paths.values()):
        return None
    return save_image(image_grid([load_image(p) for p in paths.values()], list(paths)), path)
