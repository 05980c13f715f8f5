"""Results that can be trusted: a sweep never reports another setting's rows, two runs on one directory never
compute a row twice, a metric that cannot score an input never costs the outputs, and empty or mistyped inputs
are errors, not empty tables with exit 0."""

from __future__ import annotations

import errno
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.cli.config import ConfigError, command_line, reported_as
from tests.cli.helpers import CHEAP_METRICS, cli, rows, run_app

FAST = ["sampler.num_steps=6", "sampler.progress=false", "benchmark.size=32", *CHEAP_METRICS, "method=[gd]"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    return root


@pytest.mark.integration
def test_a_sweep_reports_each_settings_own_rows(dataset, tmp_path) -> None:
    """The defect: `-m sampler.guidance_scale=0,50` printed the s = 0 numbers for s = 50 ("0 new rows")."""
    results, sweep = tmp_path / "results", tmp_path / "sweep"
    result = cli("bench", ["-m", "sampler.guidance_scale=0,50", *FAST, f"benchmark.dataset={dataset}",
                           "benchmark.first_n=2", f"benchmark.results_dir={results}", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    written = rows(results)
    assert len(written) == 4 and len({r["key"] for r in written}) == 2
    summaries = [(sweep / str(job) / "summary.md").read_text() for job in (0, 1)]
    gd_lines = [next(line for line in text.splitlines() if line.startswith("| gd |")) for text in summaries]
    assert all(line.startswith("| gd | 2 |") for line in gd_lines) and gd_lines[0] != gd_lines[1]
    assert "0 new rows" not in result.stdout + result.stderr


@pytest.mark.integration
def test_two_runs_on_one_results_directory_compute_every_row_once(dataset, tmp_path) -> None:
    results = tmp_path / "results"
    args = [*FAST, "sampler.num_steps=20", f"benchmark.dataset={dataset}", f"benchmark.results_dir={results}"]
    first = cli("bench", [*args, f"hydra.run.dir={tmp_path / 'a'}"], background=True)
    time.sleep(1.0)
    second = cli("bench", [*args, f"hydra.run.dir={tmp_path / 'b'}"], background=True)
    assert first.wait(600) == 0 and second.wait(600) == 0
    lines = [json.loads(line) for path in results.glob("results*.jsonl") for line in path.read_text().splitlines()]
    assert sorted(r["image"] for r in lines) == [f"img{i}" for i in range(4)]  # each exactly once


@pytest.mark.integration
def test_a_metric_that_cannot_score_the_image_is_recorded_missing_and_the_outputs_stay(
    tmp_path, provisioned_torch_home
) -> None:
    """NIQE needs 96 px: at 32 px it used to stop the run after sampling, with nothing saved."""
    out = tmp_path / "run"
    result = cli("run", ["image_size=32", "sampler.num_steps=3", "sampler.progress=false", "~metrics.metrics.lpips",
                         f"hydra.run.dir={out}"], env={"TORCH_HOME": str(provisioned_torch_home)})
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = rows(out)
    assert row["niqe"] is None and isinstance(row["psnr"], float)
    assert "niqe not computed" in result.stderr and (out / "metrics.json").is_file()


@pytest.mark.integration
def test_merge_and_report_refuse_a_missing_folder_without_creating_it(tmp_path) -> None:
    missing = tmp_path / "typo"
    for command in (["-c", "from adir_exp.cli.bench import merge; merge()", str(missing)],
                    ["-c", "from adir_exp.cli.bench import report; report()", str(missing), "--out", str(tmp_path / "o")]):
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "no results directory" in result.stderr, result.stderr
    assert not missing.exists() and not (tmp_path / "o").exists()


def test_first_n_zero_and_an_unreadable_dataset_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="benchmark.first_n=0"):
        run_app("bench", [*FAST, f"benchmark.dataset={tmp_path}", "benchmark.first_n=0"], tmp_path / "r")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="none of the 1 image"):
        run_app("bench", [*FAST, f"benchmark.dataset={tmp_path}"], tmp_path / "r")


def test_index_and_training_counts_are_refused_by_their_names(tmp_path) -> None:
    query = subprocess.run([sys.executable, "-m", "adir_exp.cli.index", "query", "-i", str(tmp_path), "--text", "x",
                            "-k", "0"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert query.returncode == 2 and "argument -k: must be a positive integer, got 0" in query.stderr
    train = subprocess.run([sys.executable, "-m", "adir_exp.cli.train_prior", "data.epoch_length=4",
                            "data.batch_size=8", f"hydra.run.dir={tmp_path / 'run'}"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert train.returncode == 2 and "data.epoch_length=4 is smaller than data.batch_size=8" in train.stderr
    assert "Traceback" not in train.stderr


# Issue 20 ("Trust, round 2"): each test below failed on the main of 2026-12-03.
BICUBIC = [*FAST, "method=[bicubic]"]
RUN_FAST = [o for o in FAST if not o.startswith("benchmark.")]


def photo(path: Path, seed: int) -> Path:
    Image.fromarray((np.random.default_rng(seed).random((40, 40, 3)) * 255).astype(np.uint8)).save(path)
    return path


def test_two_files_with_one_stem_are_two_images(tmp_path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    photo(folder / "x.png", 0), photo(folder / "x.jpg", 1)
    table = run_app("bench", [*BICUBIC, f"benchmark.dataset={folder}", f"benchmark.results_dir={tmp_path / 'r'}"],
                    tmp_path / "h")
    assert table[0]["n"] == 2 and sorted(r["image"] for r in rows(tmp_path / "r")) == ["x.jpg", "x.png"]


def test_an_image_replaced_in_place_is_computed_again(tmp_path) -> None:
    folder, results = tmp_path / "images", tmp_path / "r"
    folder.mkdir()
    photo(folder / "a.png", 0), photo(folder / "b.png", 1)
    args = [*BICUBIC, f"benchmark.dataset={folder}", f"benchmark.results_dir={results}"]
    run_app("bench", args, tmp_path / "h1")
    before = {r["image"]: r["psnr"] for r in rows(results)}
    photo(folder / "a.png", 2)  # another photo under the same name
    table = run_app("bench", args, tmp_path / "h2")
    rows_a = [r for r in rows(results) if r["image"] == "a"]
    assert len(rows_a) == 2 and len(rows(results)) == 3  # a once more, b reused
    new_a = next(r["psnr"] for r in rows_a if r["psnr"] != before["a"])
    assert table[0]["n"] == 2 and math.isclose(table[0]["psnr_mean"], (new_a + before["b"]) / 2)


@pytest.mark.parametrize("override", ["task.physics.noise.sigma=nan", "sampler.guidance_scale=inf",
                                      "adaptation.lr=nan", "adaptation.dropout=-inf", "benchmark.tiles.min_std=nan"])
def test_non_finite_numbers_are_refused_before_any_file_is_written(override, tmp_path) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=-?(nan|inf) must be a finite number"):
        run_app("bench", [*BICUBIC, override, f"benchmark.dataset={tmp_path / 'none'}",
                          f"benchmark.results_dir={tmp_path / 'r'}"], tmp_path / "h")
    assert not (tmp_path / "r").exists()


def test_a_results_folder_that_cannot_be_written_is_refused_before_the_model_is_built(tmp_path, monkeypatch) -> None:
    """As root (CI), a read-only folder is writable; a path under a regular file fails for everyone."""
    from adir_exp.cli import build_and_run

    (tmp_path / "file").write_text("")
    photo(tmp_path / "a.png", 0)
    monkeypatch.setattr(build_and_run, "build", lambda *_: pytest.fail("the model was built"))
    with pytest.raises(ConfigError, match=r"benchmark.results_dir: cannot write results into .*file/r"):
        run_app("bench", [*BICUBIC, f"benchmark.dataset={tmp_path}", f"benchmark.results_dir={tmp_path / 'file' / 'r'}"],
                tmp_path / "h")


@pytest.mark.parametrize(
    ("app", "overrides", "message"),
    [("bench", ["benchmark.preprocess=bogus"], "benchmark.preprocess='bogus' is not one of"),
     ("run", ["task=sr8", "image_size=4"], "image_size: task=sr8 cannot take the 4×4 images"),
     ("run", ["image_size=63"], "image_size: task=sr4 cannot take the 63×63 images"),
     ("bench", ["benchmark.size=30"], "benchmark.size: task=sr4 cannot take the 30×30 images")],
)  # fmt: skip
def test_sizes_and_choices_that_cannot_work_are_one_line_before_any_work(app, overrides, message, tmp_path) -> None:
    photo(tmp_path / "a.png", 0)
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_app(app, [*FAST, *overrides, f"benchmark.dataset={tmp_path}", f"benchmark.results_dir={tmp_path / 'r'}"]
                if app == "bench" else [*RUN_FAST, *overrides], tmp_path / "h")
    assert not list(tmp_path.glob("r/*")) and not (tmp_path / "h").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match="device: 'cuda' asked for, but torch sees no CUDA GPU"):
        run_app("run", [*RUN_FAST, "device=cuda"], tmp_path)


def reported(command: str, call, rerun: str | None = None) -> tuple[int, str]:
    """What the command's ``main`` prints for an error raised by ``call``: exit code and its last line of stderr
    (the progress bar writes there before), which must be the only line of the command's own."""
    import contextlib
    import io

    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(stderr):
        with reported_as(command, rerun=rerun):
            call()
    text = stderr.getvalue()
    assert "Traceback" not in text and [line for line in text.splitlines() if f"{command}:" in line] == [
        text.splitlines()[-1]]
    return exited.value.code, text.splitlines()[-1]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, lambda: SystemExit(1)])  # Lightning exits on Ctrl-C in a fit
def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume_and_the_rerun_finishes(stop, tmp_path, monkeypatch) -> None:
    from adir_exp.methods.baselines import BicubicUpsampling

    folder, results = tmp_path / "images", tmp_path / "r"
    folder.mkdir()
    for i in range(3):
        photo(folder / f"img{i}.png", i)
    args = [*BICUBIC, f"benchmark.dataset={folder}", f"benchmark.results_dir={results}"]
    original, calls = BicubicUpsampling.reconstruct, []

    def interrupted_on_the_second(self, problem, *rest):
        calls.append(problem.image_id)
        if len(calls) == 2:
            raise stop()
        return original(self, problem, *rest)

    monkeypatch.setattr(BicubicUpsampling, "reconstruct", interrupted_on_the_second)
    code, text = reported("adir-bench", lambda: run_app("bench", args, tmp_path / "h1"), rerun="adir-bench AGAIN")
    assert code == 130
    assert "stopped at bicubic on img1; 1 of 3 pairs are done" in text and str(results) in text
    assert text.rstrip().endswith("resume with: adir-bench AGAIN")
    assert [r["image"] for r in rows(results)] == ["img0"]
    monkeypatch.setattr(BicubicUpsampling, "reconstruct", original)
    run_app("bench", args, tmp_path / "h2")
    assert [r["image"] for r in rows(results)] == ["img0", "img1", "img2"]


def test_a_full_disk_names_the_file_and_keeps_the_rows(tmp_path, monkeypatch) -> None:
    from PIL import Image as PILImage

    folder, results = tmp_path / "images", tmp_path / "r"
    folder.mkdir()
    photo(folder / "img0.png", 0), photo(folder / "img1.png", 1)
    saved, save = [], PILImage.Image.save

    def fills_up(self, path, *rest, **kwargs):
        saved.append(path)
        if "img1" in str(path) and "bicubic" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, path, *rest, **kwargs)

    monkeypatch.setattr(PILImage.Image, "save", fills_up)
    args = [*BICUBIC, f"benchmark.dataset={folder}", f"benchmark.results_dir={results}"]
    code, text = reported("adir-bench", lambda: run_app("bench", args, tmp_path / "h"), rerun="adir-bench AGAIN")
    assert code == 1
    assert f"cannot write {saved[-1]}: No space left on device" in text and "resume with: adir-bench AGAIN" in text
    assert [r["image"] for r in rows(results)] == ["img0"]


def test_command_line_quotes_what_was_typed(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench.py", "method=[gd,bicubic]", "benchmark.dataset=/my photos"])
    assert command_line("adir-bench", "x=1") == "adir-bench 'method=[gd,bicubic]' 'benchmark.dataset=/my photos' x=1"


def test_a_progress_bar_does_not_change_the_row_key(tmp_path) -> None:
    folder, results = tmp_path / "images", tmp_path / "r"
    folder.mkdir()
    photo(folder / "a.png", 0)
    args = [*FAST, "sampler.num_steps=2", "method=[gd]", f"benchmark.dataset={folder}", f"benchmark.results_dir={results}"]
    run_app("bench", [*args, "sampler.progress=false", "adaptation.progress=false"], tmp_path / "h1")
    run_app("bench", [*args, "sampler.progress=true", "adaptation.progress=true"], tmp_path / "h2")
    assert len(rows(results)) == 1
