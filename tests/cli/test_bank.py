"""``adir-bank`` end to end: build a bank on a tiny indexed collection (the console entry point, ``build`` word
included), then ``adir-bench method=[gd,adir_bank]`` reconstructs with it and records the bank in the rows; a bank
rebuilt with other settings in the same place makes new rows instead of reusing the old ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.bank import AdapterBank
from adir_exp.cli import bank as bank_app
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder
from tests.bank.conftest import index_of, write_collection
from tests.cli.helpers import CHEAP_METRICS, cli, compose_app, rows, run_app

FIT = ["adaptation.iterations=2", "adaptation.batch_size=2", "adaptation.crop_size=32", "adaptation.progress=false",
       "model.objective.lpips_weight=0"]  # no LPIPS weights needed


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> tuple[Path, list[str]]:
    """A tiny collection indexed at 128 px, a one-image dataset, and the overrides both commands share."""
    root = tmp_path_factory.mktemp("bank_cli")
    index = index_of(write_collection(root / "collection"), root / "index", EfficientNetLite0Encoder(image_size=128))
    (root / "dataset").mkdir()
    Image.fromarray((np.random.default_rng(1).random((48, 40, 3)) * 255).astype(np.uint8)).save(
        root / "dataset" / "0801.png")
    shared = ["retrieval=knn", f"retrieval.index_dir={index}", "retrieval.encoder.image_size=128", "retrieval.k=2",
              "bank.num_neighbourhoods=2", f"bank.dir={root / 'bank'}", *FIT]
    return root, shared


@pytest.mark.integration
def test_a_bank_built_by_the_command_reconstructs_in_a_benchmark_and_is_recorded(setting, tmp_path) -> None:
    root, shared = setting
    built = cli("bank", ["build", *shared, f"hydra.run.dir={tmp_path / 'build'}"])
    assert built.returncode == 0, built.stderr[-3000:]
    assert "(complete): 2 neighbourhood(s) fitted now, 0 already done" in built.stdout
    again = bank_app.run(compose_app("bank", shared, tmp_path / "again"))  # a rerun finds it finished
    assert (again.fitted, again.already_done) == ([], ["n000", "n001"])

    bench = [*shared, "method=[gd,adir_bank]", f"benchmark.dataset={root / 'dataset'}", "benchmark.size=32",
             f"benchmark.results_dir={tmp_path / 'results'}", "sampler.num_steps=3", "sampler.progress=false",
             *CHEAP_METRICS]
    run_app("bench", bench, tmp_path / "report")
    (row,) = [r for r in rows(tmp_path / "results") if r["method"] == "adir_bank"]
    bank = AdapterBank(root / "bank")
    assert row["details"]["bank"] == bank.digest and row["details"]["neighbourhoods"][0] in bank.names
    assert row["details"]["fallback"] is False

    shutil.rmtree(root / "bank")  # the same place, another bank: its rows are new ones
    bank_app.run(compose_app("bank", [*shared, "adaptation.lr=0.01"], tmp_path / "rebuilt"))
    run_app("bench", bench, tmp_path / "report2")
    keys = {r["key"] for r in rows(tmp_path / "results") if r["method"] == "adir_bank"}
    gd_rows = [r for r in rows(tmp_path / "results") if r["method"] == "gd"]
    assert len(keys) == 2 and len(gd_rows) == 1  # GD's row was reused, adir_bank's was not


def test_a_bank_build_without_an_index_is_refused_in_one_line(tmp_path) -> None:
    from adir_exp.cli.config import ConfigError

    with pytest.raises(ConfigError, match="adir-bank partitions a retrieval index: select retrieval=knn"):
        bank_app.run(compose_app("bank", ["bank.num_neighbourhoods=2"], tmp_path))
