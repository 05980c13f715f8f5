"""Paired comparisons of benchmark methods: mean differences with paired bootstrap 95% confidence intervals.

Every method of a benchmark sees the same y and seed per image, so the right question is about the per-image
difference d_i = m_a(i) − m_b(i). The bootstrap resamples images (or, with ``group``, whole groups of images,
e.g. the tiles of one photo, which are not independent) with replacement and takes the 2.5 / 97.5 percentiles
of the mean difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Which way is better, per metric: +1 higher is better, −1 lower is better.
BETTER = {
    "psnr": 1, "ssim": 1, "lpips": -1, "lpips_vgg": -1, "dists": -1, "niqe": -1, "musiq_ava": 1, "musiq_koniq": 1,
}  # fmt: skip


def check_metrics(metrics: Iterable[str]) -> None:
    """Refuse a metric whose direction is unknown before any work: a verdict must never guess which way is better."""
    from adir_exp.evaluation.results import ResultsError

    if unknown := [metric for metric in metrics if metric not in BETTER]:
        raise ResultsError(f"--metrics: unknown metric(s) {', '.join(unknown)}; known: {', '.join(BETTER)}")


@dataclass(frozen=True)
class Difference:
    """Mean of m_a − m_b over the images both methods finished, with its bootstrap 95% CI."""

    method: str
    reference: str
    metric: str
    n: int
    mean: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """'better' / 'worse' when the CI excludes 0 (in the metric's own direction), else 'no difference'."""
        if self.low <= 0.0 <= self.high or not np.isfinite(self.mean):
            return "no clear difference"
        return "better" if np.sign(self.mean) == BETTER[self.metric] else "worse"


def per_image(rows: Iterable[dict], method: str, metric: str) -> dict[str, float]:
    return {r["image"]: float(r[metric]) for r in rows if r["method"] == method and r.get(metric) is not None}


def paired_bootstrap(
    rows: Sequence[dict],
    method: str,
    reference: str,
    metric: str,
    resamples: int = 10_000,
    seed: int = 0,
    group: Callable[[str], str] | None = None,
) -> Difference:
    """Mean paired difference ``method − reference`` in ``metric`` and its percentile-bootstrap 95% CI."""
    a, b = per_image(rows, method, metric), per_image(rows, reference, metric)
    images = sorted(set(a) & set(b))
    if not images:
        raise ValueError(f"no image has {metric} for both {method} and {reference}")
    differences = np.array([a[i] - b[i] for i in images])
    clusters: dict[str, list[int]] = defaultdict(list)
    for position, image in enumerate(images):
        clusters[group(image) if group else image].append(position)
    members = list(clusters.values())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(members), size=(resamples, len(members)))
    sums = np.array([differences[m].sum() for m in members])
    counts = np.array([len(m) for m in members])
    means = sums[picks].sum(1) / counts[picks].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Difference(method, reference, metric, len(images), float(differences.mean()), float(low), float(high))


def retrieval_precision(rows: Sequence[dict], domain: str, resamples: int = 10_000, seed: int = 0) -> dict:
    """Per method that adapted on collection images: the share of them from ``domain`` (collection ids
    ``<domain>/...``), mean over images with its percentile-bootstrap 95 % CI: {method: (n, mean, low, high)}."""
    shares: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        ids = row.get("adaptation_images") or []
        if ids and "@" not in row["method"]:
            shares[row["method"]].append(sum(i.startswith(f"{domain}/") for i in ids) / len(ids))
    rng = np.random.default_rng(seed)
    table = {}
    for method, values in shares.items():
        data = np.asarray(values)
        means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(1)
        low, high = np.percentile(means, [2.5, 97.5])
        table[method] = (len(data), float(data.mean()), float(low), float(high))
    return table


def photo_of(image_id: str) -> str:
    """The photo a tile id ``<stem>_t<k>`` was cut from (ids without a tile suffix are their own photo)."""
    stem, _, tile = image_id.rpartition("_t")
    return stem if stem and tile.isdigit() else image_id


def method_means(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per method: mean of each metric, the number of images and the mean wall seconds per image."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    table = {}
    for method, items in by_method.items():
        entry = {m: _mean([r[m] for r in items if r.get(m) is not None]) for m in metrics}
        entry["n"] = len(items)
        entry["seconds"] = float(np.mean([r["seconds"] for r in items]))
        table[method] = entry
    return table


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


BASELINES = ("bicubic", "measurement", "pseudo_inverse")


def write_report(
    results_dirs: Sequence[Path],
    out: Path,
    metrics: Sequence[str],
    pairs: Sequence[str],
    resamples: int = 10_000,
    domain: str | None = None,
    renames: dict[str, str] | None = None,
) -> str:
    """report.md (per directory: method means, then each ``method:reference`` pair's mean difference with its
    image-level and photo-level 95 % CIs, and with ``domain`` the retrieval precision of each adapting method)
    and differences.png (forest plot) in ``out``; returns the Markdown. ``BASE`` in a pair stands for the
    directory's no-prior baseline; ``renames`` names row labels (``adir_bank@1a2b3c4d`` → ``adir_bank_c8``)."""
    from adir_exp.evaluation.results import existing_rows, labelled_by_key

    check_metrics(metrics)
    columns = [*metrics, *(["ssim"] if "ssim" not in metrics else [])]
    lines: list[str] = []
    plotted: list[tuple[str, Difference]] = []
    for results_dir in results_dirs:
        rows = [{**r, "method": (renames or {}).get(r["method"], r["method"])}
                for r in labelled_by_key(existing_rows(results_dir))]
        means = method_means(rows, columns)
        base = next((m for m in BASELINES if m in means), "BASE")
        lines += [f"### {Path(results_dir).name}", "", "| method | n | " + " | ".join(columns) + " | s/image |",
                  "|---" * (len(columns) + 3) + "|"]
        for method, entry in means.items():
            values = " | ".join(f"{entry[m]:.4f}" for m in columns)
            lines.append(f"| {method} | {entry['n']} | {values} | {entry['seconds']:.1f} |")
        lines += ["", "Paired differences (method − reference), mean and 95% bootstrap CI over images; "
                  "in brackets the CI when whole photos are resampled (tiles of a photo are not independent).", "",
                  "| method − reference | metric | n | mean Δ | 95% CI (images) | 95% CI (photos) | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for pair in pairs:
            method, reference = pair.replace("BASE", base).split(":")
            if method not in means or reference not in means:
                continue
            for metric in metrics:
                try:
                    d = paired_bootstrap(rows, method, reference, metric, resamples)
                except ValueError:  # the metric is missing for one of them (not computed, or not applicable)
                    lines.append(f"| {method} − {reference} | {metric} | 0 | — | — | — | not measured |")
                    continue
                c = paired_bootstrap(rows, method, reference, metric, resamples, group=photo_of)
                plotted.append((Path(results_dir).name, d))
                lines.append(f"| {method} − {reference} | {metric} | {d.n} | {d.mean:+.4f} | "
                             f"[{d.low:+.4f}, {d.high:+.4f}] | [{c.low:+.4f}, {c.high:+.4f}] | {d.verdict} |")
        if domain:
            lines += ["", f"Retrieval precision: share of the adaptation images from `{domain}/` (mean over images, "
                      "95% bootstrap CI).", "", "| method | n | precision | 95% CI |", "|---|---|---|---|"]
            for method, (n, mean, low, high) in retrieval_precision(rows, domain, resamples).items():
                lines.append(f"| {method} | {n} | {mean:.3f} | [{low:.3f}, {high:.3f}] |")
        lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    if plotted:
        plot_differences(plotted, metrics, out / "differences.png")
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


def plot_differences(differences: Sequence[tuple[str, Difference]], metrics: Sequence[str], path: Path) -> Path:
    """Forest plot: one panel per metric, one row per (experiment, comparison), CI as a bar, 0 as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(f"{name}: {d.method} − {d.reference}" for name, d in differences))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.38 * len(labels) + 1.2), sharey=True)
    for axis, metric in zip(np.atleast_1d(axes), metrics):
        for name, d in differences:
            if d.metric != metric:
                continue
            y = labels.index(f"{name}: {d.method} − {d.reference}")
            colour = {"better": "tab:green", "worse": "tab:red"}.get(d.verdict, "tab:gray")
            axis.errorbar(d.mean, y, xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", color=colour, capsize=3)
        axis.axvline(0.0, color="black", lw=0.8)
        direction = "higher" if BETTER[metric] > 0 else "lower"
        axis.set_title(f"Δ {metric} ({direction} is better)")
        axis.invert_yaxis()
    np.atleast_1d(axes)[0].set_yticks(range(len(labels)), labels)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class CurvePoint:
    label: str
    iterations: int
    difference: Difference


def iteration_curve(
    rows: Sequence[dict], method: str, reference: str, metric: str, iterations: int, label: str,
    resamples: int = 10_000,
) -> list[CurvePoint]:
    """Paired differences ``method − reference`` in ``metric`` after each adaptation step count the rows hold:
    ``method@N`` rows (snapshots of the fit, ``adaptation.reconstruct_at``) and ``method`` itself after
    ``iterations`` steps. 0 steps is the reference by construction (LoRA starts as an exact no-op)."""
    check_metrics([metric])
    points = [CurvePoint(label, 0, Difference(method, reference, metric, 0, 0.0, 0.0, 0.0))]
    steps = sorted({int(r["iterations"]) for r in rows if r["method"].startswith(f"{method}@")})
    for step, name in [*((n, f"{method}@{n}") for n in steps), (iterations, method)]:
        try:
            points.append(CurvePoint(label, step, paired_bootstrap(rows, name, reference, metric, resamples)))
        except ValueError:  # no image has both (the metric could not score them)
            continue
    return points


def plot_curve(points: Sequence[CurvePoint], metrics: Sequence[str], path: Path) -> Path:
    """Δmetric (method − reference) against adaptation iterations, one line per label, 95% CIs as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.6))
    for axis, metric in zip(np.atleast_1d(axes), metrics):
        for label in dict.fromkeys(p.label for p in points):
            line = [p for p in points if p.label == label and p.difference.metric == metric]
            x = np.array([p.iterations for p in line], dtype=float)
            mean = np.array([p.difference.mean for p in line])
            spread = np.array([[p.difference.mean - p.difference.low for p in line],
                               [p.difference.high - p.difference.mean for p in line]])
            axis.errorbar(x + 1, mean, yerr=spread, marker="o", capsize=3, label=label)
        axis.axhline(0.0, color="black", lw=0.8)
        axis.set_xscale("log")
        axis.set_xlabel("adaptation iterations + 1")
        direction = "higher" if BETTER[metric] > 0 else "lower"
        axis.set_title(f"Δ {metric} vs the reference ({direction} is better)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
