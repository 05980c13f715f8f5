"""A named set of metrics computed together, which can leave out metrics whose weights are absent.

Hydra builds the suite from ``conf/metrics/*.yaml``. Metrics are given as factories (``_partial_: true``)
rather than objects so that the suite, not Hydra, constructs them: a :class:`MissingWeightsError` then
reaches the suite unwrapped, and ``on_missing: skip`` turns it into a warning so an offline benchmark
still reports every metric it can.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Literal

import torch

from adir_exp.metrics.base import Metric
from adir_exp.weights import MissingWeightsError
from adir_exp.weights.digest import file_sha256

MetricSpec = Metric | Callable[..., Metric]
OnMissing = Literal["strict", "skip"]


class MetricUnavailableWarning(UserWarning):
    """A metric was left out of a suite because its weights are missing."""


class MetricNotApplicableWarning(UserWarning):
    """A metric could not score one input (too small, constant, non-finite); its value is recorded as missing."""


class MetricSuite:
    """``suite(pred, target) -> {name: (B,) scores}`` over the metrics whose weights are available.

    ``metrics`` maps result names to metrics or to factories called as ``factory(device=device)``.
    ``on_missing="strict"`` re-raises a factory's :class:`MissingWeightsError`; ``"skip"`` warns, records the
    reason in :attr:`skipped` and goes on.
    """

    def __init__(
        self, metrics: Mapping[str, MetricSpec], on_missing: OnMissing = "skip", device: str | torch.device = "cpu"
    ) -> None:
        if on_missing not in ("strict", "skip"):
            raise ValueError(f"on_missing must be 'strict' or 'skip', got {on_missing!r}")
        self.metrics: dict[str, Metric] = {}
        self.skipped: dict[str, str] = {}
        for name, spec in metrics.items():
            if isinstance(spec, Metric):
                self.metrics[name] = spec
                continue
            try:
                self.metrics[name] = spec(device=device)
            except MissingWeightsError as error:
                if on_missing == "strict":
                    raise
                self.skipped[name] = str(error)
                warnings.warn(f"metric {name!r} skipped: {error}", MetricUnavailableWarning, stacklevel=2)

    @property
    def higher_is_better(self) -> dict[str, bool]:
        return {name: metric.higher_is_better for name, metric in self.metrics.items()}

    def fingerprint(self) -> str:
        """A digest of the SHA-256 of every weight file the suite's metrics loaded, by metric: part of each row's
        key, so rows scored with one LPIPS file are never reused after it is replaced. Files are hashed once per
        version (path, size, times), not once per call."""
        digest = hashlib.sha256()
        for name, metric in sorted(self.metrics.items()):
            for path in metric.weight_files:
                digest.update(f"{name}\t{file_sha256(path)}\n".encode())
        return digest.hexdigest()[:16]

    @property
    def requires_reference(self) -> bool:
        return any(metric.requires_reference for metric in self.metrics.values())

    def __call__(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if target is None and self.requires_reference:
            needing = [name for name, metric in self.metrics.items() if metric.requires_reference]
            raise ValueError(f"full-reference metrics {needing} need a target")
        return {name: metric(pred, target) for name, metric in self.metrics.items()}

    def scores(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, float | None]:
        """Mean score per metric for one result row; a metric that cannot score this input (an image below NIQE's
        96 px, a flat tile whose statistics are singular, a non-finite value) gives None with a warning, so one
        unusual image never costs the rest of a run."""
        out: dict[str, float | None] = {}
        for name, metric in self.metrics.items():
            try:
                value = float(metric(pred, target).mean())
            except (ValueError, RuntimeError, FloatingPointError) as error:
                warnings.warn(f"{name} not computed: {error}", MetricNotApplicableWarning, stacklevel=2)
                out[name] = None
                continue
            if not math.isfinite(value):
                warnings.warn(f"{name} gave {value}; recorded as missing", MetricNotApplicableWarning, stacklevel=2)
                value = None
            out[name] = value
        return out

    def __repr__(self) -> str:
        return f"MetricSuite(metrics={list(self.metrics)}, skipped={list(self.skipped)})"
