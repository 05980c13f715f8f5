"""``adir-run`` with adaptation end to end: adapt on y, write the grid and the adapter; reload it without adapting."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from adir_exp.adaptation import AdapterFileError
from adir_exp.adaptation.artifacts import read_metadata
from adir_exp.cli.run import run
from adir_exp.data.images import save_image
from adir_exp.paths import CONF_DIR
from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.embedding import EmbedConfig
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder
from tests.conftest import REPO_ROOT

FAST = [
    "model=adm_tiny", "image_size=32", "sampler.num_steps=3", "sampler.progress=false",
    *(f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "niqe", "musiq_ava", "musiq_koniq")),
]  # fmt: skip


def adir_run(overrides: list[str], out: Path, torch_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TORCH_HOME": str(torch_home), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "adir_exp.cli.run", *FAST, *overrides, f"hydra.run.dir={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory, provisioned_torch_home) -> Path:
    out = tmp_path_factory.mktemp("adapted")
    result = adir_run(
        ["adaptation=self", "adaptation.iterations=4", "adaptation.batch_size=2", "adaptation.log_every_n_steps=1",
         "adaptation.progress=false"],
        out, provisioned_torch_home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.integration
def test_self_adaptation_writes_grid_adapter_metrics_and_training_log(adapted_run: Path) -> None:
    for name in ("grid.png", "reconstruction.png", "adapter.safetensors", "metrics.json"):
        assert (adapted_run / name).is_file(), name
    assert set(json.loads((adapted_run / "metrics.json").read_text())) == {"psnr", "pseudo_inverse/psnr"}
    with open(adapted_run / "logs" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = [row for row in rows if row.get("adaptation/loss")]
    assert len(losses) == 4 and all(row.get("adaptation/lpips") for row in losses)


def run_in_process(overrides: list[str], out: Path) -> dict[str, float]:
    """``adir-run`` without a new interpreter (its imports cost more than this run): compose, set Hydra's runtime
    directory as the app would, call :func:`run`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=[*FAST, *overrides], return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return run(cfg)


@pytest.mark.integration
def test_loading_the_adapter_repeats_the_reconstruction_without_adapting(
    adapted_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        metrics = run_in_process([f"adaptation.load={adapted_run / 'adapter.safetensors'}"], tmp_path)
    assert "not adapting again" in caplog.text
    assert (tmp_path / "reconstruction.png").read_bytes() == (adapted_run / "reconstruction.png").read_bytes()
    assert metrics == json.loads((adapted_run / "metrics.json").read_text())
    assert not (tmp_path / "adapter.safetensors").exists()


@pytest.mark.integration
def test_loading_onto_another_model_is_refused(adapted_run: Path, tmp_path: Path) -> None:
    with pytest.raises(AdapterFileError, match="fitted on base model 'adm_tiny'"):
        run_in_process([f"adaptation.load={adapted_run / 'adapter.safetensors'}", "model.name=other"], tmp_path)


@pytest.mark.integration
def test_knn_adaptation_retrieves_adapts_and_records_the_neighbours(
    tmp_path: Path, provisioned_torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADIR proper on a six-image collection: retrieval=knn adaptation=knn, K = 3."""
    collection = tmp_path / "collection"
    collection.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(6):
        save_image(torch.rand(1, 3, 40 + 4 * i, 48, generator=generator), collection / f"img{i}.png")
    encoder = EfficientNetLite0Encoder(image_size=128)
    embed = EmbedConfig(batch_size=6, num_workers=0, accelerator="cpu", devices=1, progress=False)
    build_index(collection, tmp_path / "index", encoder, embed=embed)
    monkeypatch.setenv("TORCH_HOME", str(provisioned_torch_home))
    out = tmp_path / "run"
    run_in_process(
        ["retrieval=knn", f"retrieval.index_dir={tmp_path / 'index'}", "retrieval.encoder.image_size=128",
         "retrieval.k=3", "adaptation=knn", "adaptation.iterations=2", "adaptation.batch_size=2",
         "adaptation.progress=false"],
        out,
    )  # fmt: skip
    metadata = read_metadata(out / "adapter.safetensors")
    assert metadata.k == 3 and len(set(metadata.image_ids)) == 3
    assert set(metadata.image_ids) <= {f"img{i}.png" for i in range(6)}
    assert (out / "grid.png").is_file()
