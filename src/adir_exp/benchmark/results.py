"""Result rows that are never lost: one JSON line per finished (method, image), appended atomically.

A run appends each row with a single ``write`` on an ``O_APPEND`` descriptor and fsyncs it, so a killed run
leaves every finished row intact and at most one torn last line, which loading drops and truncates. A restart
reads the finished keys and skips them, so an interrupted-and-resumed run ends with exactly the rows of an
uninterrupted one. Each shard writes its own file; summaries read them all.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

RowKey = tuple[str, str, int]


def row_key(row: dict) -> RowKey:
    return (row["method"], row["image"], int(row["seed"]))


class ResultStore:
    """Append-only JSON-lines file of result rows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)

    def rows(self) -> list[dict]:
        return read_rows([self.path])

    def done(self) -> set[RowKey]:
        return {row_key(r) for r in self.rows()}

    def append(self, row: dict) -> None:
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_rows(paths: list[Path]) -> list[dict]:
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
    return sorted(directory.glob("results*.jsonl"))


def t_quantile_975(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def summarise(rows: list[dict], metrics: list[str], paper: dict | None = None) -> list[dict]:
    """Per method: n, and for each metric mean, std and the 95 % CI half-width (Student t); paper value beside."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    paper_methods = (paper or {}).get("methods", {}) or {}
    table = []
    for method, method_rows in sorted(by_method.items()):
        entry: dict = {"method": method, "n": len(method_rows)}
        for metric in metrics:
            values = [float(r[metric]) for r in method_rows if r.get(metric) is not None]
            n = len(values)
            mean = sum(values) / n if n else float("nan")
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
            entry[f"{metric}_mean"] = mean
            entry[f"{metric}_std"] = std
            entry[f"{metric}_ci95"] = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
            entry[f"{metric}_paper"] = (paper_methods.get(method) or {}).get(metric)
        entry["seconds_mean"] = sum(float(r.get("seconds", 0.0)) for r in method_rows) / len(method_rows)
        table.append(entry)
    return table


def write_summary(table: list[dict], metrics: list[str], directory: Path) -> tuple[Path, Path]:
    """summary.csv (every column) and summary.md (mean ± CI with the paper's value beside)."""
    import csv

    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / "summary.csv", directory / "summary.md"
    columns = list(table[0]) if table else ["method", "n"]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    header = ["method", "n"] + [h for m in metrics for h in (m, f"{m} (paper)")] + ["s/image"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in table:
        cells = [entry["method"], str(entry["n"])]
        for m in metrics:
            mean, ci = entry[f"{m}_mean"], entry[f"{m}_ci95"]
            cells.append(f"{mean:.4f}" + ("" if math.isnan(ci) else f" ± {ci:.4f}"))
            paper = entry[f"{m}_paper"]
            cells.append("—" if paper is None else f"{paper}")
        cells.append(f"{entry['seconds_mean']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
