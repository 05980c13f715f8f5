"""Result rows that are never lost, never duplicated and never mistaken for another configuration's.

A row is one finished (method, image) pair. It carries ``key``: a digest of everything that determines it (the
method's resolved settings, the prior and its weights, the task's operator and noise, the preprocessing, the
seed), so rows of different settings can share a results directory without ever being reported for each other;
and ``source``: the content digest of the image's file, so a file replaced in place is computed anew (its newer
rows supersede the older ones in directory-wide reports).
Each row is appended with a single ``write`` on an ``O_APPEND`` descriptor and fsynced, so a killed run leaves
every finished row intact and at most one torn last line, which loading drops. A restart skips the keys it finds;
concurrent runs on one directory claim each pair with a lock first, so no pair is computed twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adir_exp.paths import naming_failures

PAPER_RESULTS = Path(__file__).with_name("paper_results.yaml")
RowKey = tuple[str, str, str, str]  # method, image, key, source
NON_METRIC = frozenset({"method", "image", "seed", "key", "source", "seconds", "adaptation_images", "iterations"})


class ResultsError(ValueError):
    """A results directory is missing or holds no rows."""


def row_key(row: dict) -> RowKey:
    return (row["method"], row["image"], row.get("key", ""), row.get("source", ""))


class ResultStore:
    """The JSON-lines file of one shard in ``directory``; reads see every shard's rows."""

    def __init__(self, directory: str | Path, shard: tuple[int, int] = (0, 1)) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"results-shard{shard[0]}of{shard[1]}.jsonl"
        self._drop_torn_tail()

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def rows(self) -> list[dict]:
        return read_rows(result_files(self.directory))

    def done(self) -> set[RowKey]:
        return {row_key(r) for r in self.rows()}

    def append(self, row: dict) -> None:
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        with naming_failures(self.path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    @contextmanager
    def claim(self, key: RowKey) -> Iterator[bool]:
        """Hold an exclusive lock on one pair while computing it; yields False when another process holds it or
        already finished it. The OS releases the lock if this process dies."""
        claims = self.directory / ".claims"
        claims.mkdir(exist_ok=True)
        name = hashlib.sha256("\t".join(key).encode()).hexdigest()[:24]
        with open(claims / f"{name}.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield key not in self.done()
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record_skipped(self, path: Path, reason: str) -> None:
        """List an unreadable input in skipped.txt once, however often runs restart."""
        listing = self.directory / "skipped.txt"
        line = f"{path}\t{reason}"
        known = listing.read_text().splitlines() if listing.exists() else []
        if line not in known:
            with open(listing, "a") as handle:
                handle.write(line + "\n")


def read_rows(paths: Sequence[Path]) -> list[dict]:
    """Rows of several result files, de-duplicated by key (first wins), torn lines ignored."""
    seen: dict[RowKey, dict] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            seen.setdefault(row_key(row), row)
    return list(seen.values())


def result_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("results*.jsonl"))


def existing_rows(directory: Path) -> list[dict]:
    """The rows of a results directory; :class:`ResultsError` when there is none (a mistyped path, say)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ResultsError(f"no results directory {directory}")
    rows = read_rows(result_files(directory))
    if not rows:
        raise ResultsError(f"no result rows in {directory} (expected results-shard*.jsonl from adir-bench)")
    return latest_content(rows)


def latest_content(rows: Sequence[dict]) -> list[dict]:
    """Rows without those of an image file's earlier content: where one (method, image, key) has rows of several
    sources (the file was replaced in place), the last appended source's row stands for it."""
    latest = {row_key(r)[:3]: row_key(r)[3] for r in rows}
    return [r for r in rows if latest[row_key(r)[:3]] == row_key(r)[3]]


def check_writable(directory: Path) -> None:
    """Create ``directory`` and a file in it, so a folder that cannot take results is refused before any work
    (permissions, a read-only mount, a path under a regular file: what really fails, whoever runs it)."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ResultsError(f"cannot write results into {directory}: {error.strerror or error}") from error


def labelled_by_key(rows: Sequence[dict]) -> list[dict]:
    """Rows with ``method`` renamed ``method@<key>`` where one method has rows of several settings, so the
    settings are never averaged together."""
    keys: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        keys[row["method"]].add(row.get("key", ""))
    return [r if len(keys[r["method"]]) == 1 else {**r, "method": f"{r['method']}@{r.get('key', '')[:8]}"} for r in rows]


def merge_directory(directory: Path, experiment: str | None = None) -> Path:
    """summary.md/.csv of every row in ``directory`` (all shards), each setting of a method on its own row."""
    rows = labelled_by_key(existing_rows(directory))
    paper = paper_numbers(experiment)
    metrics = table_metrics(rows, paper)
    _, md_path = write_summary(summarise(rows, metrics, paper), metrics, Path(directory))
    return md_path


def metric_names(rows: Sequence[dict]) -> list[str]:
    """Every metric some row reports (numeric or recorded as missing)."""
    return sorted({k for r in rows for k, v in r.items() if k not in NON_METRIC and (v is None or _is_number(v))})


def table_metrics(rows: Sequence[dict], paper: dict | None) -> list[str]:
    """The summary's metric columns: what the rows measured, then what the paper reports that they did not (so
    the paper's numbers show even where a metric's weights are missing here)."""
    measured = metric_names(rows)
    return measured + sorted(published_metrics(paper) - set(measured))


def published_metrics(paper: dict | None) -> set[str]:
    """The metrics the paper reports for an experiment (for its methods or its own baselines): the summary's
    "(paper)" columns."""
    groups = [(paper or {}).get(group) or {} for group in ("methods", "paper_only")]
    return {metric for methods in groups for values in methods.values() for metric in (values or {})}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def paper_numbers(experiment: str | None) -> dict | None:
    """The paper's published values for an experiment (``paper_results.yaml``), if it is one of its tables."""
    import yaml

    if not experiment:
        return None
    return (yaml.safe_load(PAPER_RESULTS.read_text()) or {}).get(experiment)


def t_quantile_975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def paper_row_name(baseline: str) -> str:
    """Our method name for a baseline the paper prints (``Real-ESRGAN`` -> ``realesrgan``, ``SwinIR`` -> ``swinir``):
    the method yaml of that name is the row the paper's value goes beside."""
    return "".join(character for character in baseline.lower() if character.isalnum())


def summarise(rows: Sequence[dict], metrics: Sequence[str], paper: dict | None = None) -> list[dict]:
    """Per method (in first-seen order): n, and per metric mean, std and the 95 % CI half-width (Student t), with
    the paper's value beside it where the paper reports that metric; then the paper's own baselines
    (``paper_only``) as rows with no measurement, except those one of our methods runs (:func:`paper_row_name`)."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    published = (paper or {}).get("methods") or {}
    baselines = (paper or {}).get("paper_only") or {}
    ours = {paper_row_name(name): values for name, values in baselines.items()}  # e.g. realesrgan -> Real-ESRGAN's
    reported = published_metrics(paper)
    table = []
    for method, method_rows in by_method.items():
        entry: dict = {"method": method, "n": len(method_rows)}
        for metric in metrics:
            values = [float(r[metric]) for r in method_rows if r.get(metric) is not None]
            n = len(values)
            mean = sum(values) / n if n else float("nan")
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
            entry[f"{metric}_mean"] = mean
            entry[f"{metric}_n"] = n  # fewer than n where the metric could not score some images
            entry[f"{metric}_std"] = std
            entry[f"{metric}_ci95"] = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
            if metric in reported:
                entry[f"{metric}_paper"] = (published.get(method) or ours.get(method) or {}).get(metric)
        entry["seconds_mean"] = sum(float(r.get("seconds", 0.0)) for r in method_rows) / len(method_rows)
        table.append(entry)
    for method, values in baselines.items():
        if paper_row_name(method) in by_method:  # measured here: its published values sit in our row
            continue
        entry = {"method": f"{method} (paper)", "n": 0, "seconds_mean": float("nan")}
        for metric in metrics:
            entry |= {f"{metric}_mean": float("nan"), f"{metric}_n": 0, f"{metric}_std": float("nan"),
                      f"{metric}_ci95": float("nan")}
            if metric in reported:
                entry[f"{metric}_paper"] = (values or {}).get(metric)
        table.append(entry)
    return table


@dataclass
class Report:
    """What one run wrote for its configuration: the summary table, where its files are, the methods in table
    order, and each adapting pair's loss terms per step by ``<image>/<method>``; what the command prints and the
    logger receives."""

    table: list[dict]
    summary_md: Path
    grids: list[Path]
    store_dir: Path
    report_dir: Path
    methods: list[str]
    adaptation_losses: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def write_summary(table: list[dict], metrics: Sequence[str], directory: Path) -> tuple[Path, Path]:
    """summary.csv (every column) and summary.md (mean ± CI with the paper's value beside)."""
    import csv

    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / "summary.csv", directory / "summary.md"
    columns = list(table[0]) if table else ["method", "n"]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    md_path.write_text(summary_markdown(table, metrics))
    return csv_path, md_path


def summary_markdown(table: list[dict], metrics: Sequence[str]) -> str:
    """Mean ± CI per metric, and the paper's value beside the metrics the paper reports (no empty columns)."""
    with_paper = {m for m in metrics if any(f"{m}_paper" in entry for entry in table)}
    header = ["method", "n"]
    for m in metrics:
        header += [m, f"{m} (paper)"] if m in with_paper else [m]
    header.append("s/image")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in table:
        cells = [entry["method"], str(entry["n"])]
        for m in metrics:
            mean, ci, count = entry[f"{m}_mean"], entry[f"{m}_ci95"], entry[f"{m}_n"]
            partial = f" ({count}/{entry['n']})" if 0 < count < entry["n"] else ""
            cells.append("—" if math.isnan(mean) else f"{mean:.4f}" + ("" if math.isnan(ci) else f" ± {ci:.4f}") + partial)
            if m in with_paper:
                paper = entry[f"{m}_paper"]
                cells.append("—" if paper is None else f"{paper}")
        seconds = entry["seconds_mean"]
        cells.append("—" if math.isnan(seconds) else f"{seconds:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
