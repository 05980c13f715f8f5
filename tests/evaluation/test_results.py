"""Result rows: torn lines, keys that separate settings, claims between concurrent runs, summaries."""

from __future__ import annotations

import errno
import json
import math
import multiprocessing
import os

import pytest

from adir_exp.evaluation.results import (
    ResultsError,
    ResultStore,
    check_writable,
    existing_rows,
    labelled_by_key,
    merge_directory,
    metric_names,
    read_rows,
    summarise,
    write_summary,
)


def row(image: str, key: str = "k1", method: str = "gd", source: str = "c1", **metrics) -> dict:
    return {"method": method, "image": image, "source": source, "seed": 0, "key": key, "seconds": 1.0, **metrics}


def test_torn_last_line_is_dropped_and_appending_resumes(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.append(row("0801", psnr=20.0))
    with open(store.path, "a") as handle:
        handle.write('{"method": "gd", "image": "0802", "se')  # a kill in the middle of a write
    store = ResultStore(tmp_path)
    assert store.done() == {("gd", "0801", "k1", "c1")}
    store.append(row("0802", psnr=21.0))
    assert [json.loads(line)["image"] for line in store.path.read_text().splitlines()] == ["0801", "0802"]


def test_rows_are_deduplicated_across_shard_files_and_read_from_all(tmp_path) -> None:
    a, b = ResultStore(tmp_path, (0, 2)), ResultStore(tmp_path, (1, 2))
    a.append(row("0801"))
    b.append(row("0801"))
    b.append(row("0802"))
    assert len(read_rows([a.path, b.path])) == 2 and a.done() == b.done()


def test_rows_of_other_settings_are_not_done_and_are_summarised_apart(tmp_path) -> None:
    store = ResultStore(tmp_path)
    store.append(row("0801", key="s0", psnr=20.0))
    store.append(row("0801", key="s50", psnr=25.0))
    assert ("gd", "0801", "s50", "c1") in store.done() and ("gd", "0801", "s10", "c1") not in store.done()
    labelled = labelled_by_key(store.rows())
    assert sorted(r["method"] for r in labelled) == ["gd@s0", "gd@s50"]
    text = merge_directory(tmp_path).read_text()
    assert "| gd@s0 | 1 | 20.0000 |" in text and "| gd@s50 | 1 | 25.0000 |" in text


def test_a_file_replaced_in_place_is_not_done_and_its_newer_rows_stand_for_it(tmp_path) -> None:
    """Issue 20, item 2: the rows of a.png's old content must neither count as done nor be reported beside the
    new content's."""
    store = ResultStore(tmp_path)
    store.append(row("a", source="old", psnr=20.0))
    assert ("gd", "a", "k1", "new") not in store.done()
    store.append(row("a", source="new", psnr=30.0))
    store.append(row("b", source="other", psnr=10.0))
    assert [(r["image"], r["psnr"]) for r in existing_rows(tmp_path)] == [("a", 30.0), ("b", 10.0)]
    assert "| gd | 2 | 20.0000" in merge_directory(tmp_path).read_text()


def test_a_folder_that_cannot_take_results_is_refused(tmp_path) -> None:
    """Issue 20, item 6. Tests run as root, whom permissions do not stop: a path under a regular file fails for
    everyone."""
    (tmp_path / "file").write_text("")
    with pytest.raises(ResultsError, match="cannot write results into .*file/results"):
        check_writable(tmp_path / "file" / "results")
    check_writable(tmp_path / "fresh" / "results")
    assert (tmp_path / "fresh" / "results").is_dir() and not any((tmp_path / "fresh" / "results").iterdir())


def test_a_full_disk_names_the_results_file(tmp_path, monkeypatch) -> None:
    store = ResultStore(tmp_path)

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space left") as raised:
        store.append(row("0801"))
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(store.path)


def _claim_and_report(directory: str, queue) -> None:
    store = ResultStore(directory)
    with store.claim(("gd", "0801", "k1", "c1")) as mine:
        queue.put(mine)


def test_a_claimed_pair_is_refused_to_another_process_and_a_finished_one_to_everyone(tmp_path) -> None:
    store = ResultStore(tmp_path)
    queue = multiprocessing.get_context("fork").Queue()
    with store.claim(("gd", "0801", "k1", "c1")) as mine:
        assert mine
        process = multiprocessing.get_context("fork").Process(target=_claim_and_report, args=(str(tmp_path), queue))
        process.start()
        process.join(30)
        assert queue.get(timeout=5) is False  # held by this process
        store.append(row("0801"))
    with store.claim(("gd", "0801", "k1", "c1")) as mine:
        assert not mine  # finished meanwhile


def test_skipped_inputs_are_listed_once_however_often_a_run_restarts(tmp_path) -> None:
    for _ in range(3):
        ResultStore(tmp_path).record_skipped(tmp_path / "broken.png", "cannot read")
    assert len((tmp_path / "skipped.txt").read_text().splitlines()) == 1


def test_missing_or_empty_results_are_errors(tmp_path) -> None:
    with pytest.raises(ResultsError, match="no results directory"):
        existing_rows(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(ResultsError, match="no result rows"):
        merge_directory(tmp_path)


def test_summary_mean_std_ci_paper_column_and_paper_only_rows(tmp_path) -> None:
    rows = [row(str(i), lpips=v, niqe=None if i == 0 else 5.0) for i, v in enumerate([0.1, 0.2, 0.3])]
    assert metric_names(rows) == ["lpips", "niqe"]
    table = summarise(rows, ["lpips", "niqe"], {"methods": {"gd": {"lpips": 0.25}}, "paper_only": {"IPT": {"lpips": 0.2}}})
    entry = table[0]
    assert entry["n"] == 3
    assert entry["lpips_mean"] == pytest.approx(0.2)
    assert entry["lpips_std"] == pytest.approx(0.1)
    assert entry["lpips_ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    assert entry["lpips_paper"] == 0.25
    assert entry["niqe_mean"] == 5.0  # the missing value is left out, not counted as 0
    assert table[1]["method"] == "IPT (paper)" and table[1]["lpips_paper"] == 0.2 and table[1]["n"] == 0
    _, md = write_summary(table, ["lpips", "niqe"], tmp_path)
    text = md.read_text()
    assert "0.2000 ± 0.2484" in text and "5.0000 ± 0.0000 (2/3)" in text and "| 0.25 |" in text and "| IPT (paper) | 0 | — | 0.2 |" in text


def test_a_baseline_we_run_gets_the_papers_value_beside_ours_instead_of_its_own_row(tmp_path) -> None:
    rows = [row(str(i), method="realesrgan", lpips=0.3 + 0.01 * i) for i in range(2)] + [row("0", lpips=0.4)]
    paper = {"methods": {"gd": {"lpips": 0.325}},
             "paper_only": {"Real-ESRGAN": {"lpips": 0.317}, "SwinIR": {"lpips": 0.232}}}  # fmt: skip
    table = summarise(rows, ["lpips"], paper)
    assert [entry["method"] for entry in table] == ["realesrgan", "gd", "SwinIR (paper)"]
    assert table[0]["lpips_paper"] == 0.317 and table[1]["lpips_paper"] == 0.325
    _, md = write_summary(table, ["lpips"], tmp_path)
    assert "| realesrgan | 2 | 0.3050 ± 0.0635 | 0.317 |" in md.read_text()


def test_paper_columns_only_for_the_metrics_the_paper_reports(tmp_path) -> None:
    rows = [row(str(i), lpips=0.1 * (i + 1), psnr=20.0 + i) for i in range(2)]
    plain = summarise(rows, ["lpips", "psnr"])  # not one of the paper's tables
    assert not [key for key in plain[0] if key.endswith("_paper")]
    _, md = write_summary(plain, ["lpips", "psnr"], tmp_path / "plain")
    assert md.read_text().splitlines()[0] == "| method | n | lpips | psnr | s/image |"
    assert "paper" not in (tmp_path / "plain" / "summary.csv").read_text()
    paper = {"methods": {"gd": {"lpips": 0.25}}, "paper_only": {"IPT": {"lpips": 0.2}}}
    _, md = write_summary(summarise(rows, ["lpips", "psnr"], paper), ["lpips", "psnr"], tmp_path / "paper")
    lines = md.read_text().splitlines()
    assert lines[0] == "| method | n | lpips | lpips (paper) | psnr | s/image |"  # the paper reports no PSNR here
    assert lines[3] == "| IPT (paper) | 0 | — | 0.2 | — | — |"
