from __future__ import annotations

import json
import math

import pytest

from adir_exp.benchmark.results import ResultStore, read_rows, summarise, write_summary


def test_torn_last_line_is_dropped_and_appending_resumes(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    store.append({"method": "gd", "image": "0801", "seed": 0, "psnr": 20.0})
    with open(path, "a") as handle:
        handle.write('{"method": "gd", "image": "0802", "se')  # a kill in the middle of a write
    store = ResultStore(path)
    assert store.done() == {("gd", "0801", 0)}
    store.append({"method": "gd", "image": "0802", "seed": 0, "psnr": 21.0})
    assert [json.loads(l)["image"] for l in path.read_text().splitlines()] == ["0801", "0802"]


def test_rows_are_deduplicated_across_files(tmp_path) -> None:
    a, b = ResultStore(tmp_path / "results-a.jsonl"), ResultStore(tmp_path / "results-b.jsonl")
    row = {"method": "gd", "image": "0801", "seed": 0, "psnr": 20.0}
    a.append(row)
    b.append(row)
    assert len(read_rows([a.path, b.path])) == 1


def test_summary_mean_std_ci_and_paper_column(tmp_path) -> None:
    rows = [{"method": "gd", "image": str(i), "seed": 0, "seconds": 1.0, "lpips": v} for i, v in enumerate([0.1, 0.2, 0.3])]
    table = summarise(rows, ["lpips"], {"methods": {"gd": {"lpips": 0.25}}})
    entry = table[0]
    assert entry["n"] == 3
    assert entry["lpips_mean"] == pytest.approx(0.2)
    assert entry["lpips_std"] == pytest.approx(0.1)
    assert entry["lpips_ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert entry["lpips_paper"] == 0.25
    _, md = write_summary(table, ["lpips"], tmp_path)
    assert "0.2000 ± 0.2484" in md.read_text() and "| 0.25 |" in md.read_text()
