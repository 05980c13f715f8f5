"""``adir-run`` with adaptation end to end: adapt on y or on retrieved images, write the adapter and the loss
curve; a saved adapter applied to the prior repeats the reconstruction without adapting."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from adir_exp.adaptation.artifacts import read_metadata
from adir_exp.cli.config import ConfigError
from adir_exp.data.images import save_image
from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.embedding import EmbedConfig
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder
from tests.cli.helpers import CHEAP_METRICS, cli, rows, run_app, stored

FAST = ["image_size=32", "sampler.num_steps=3", "sampler.progress=false", *CHEAP_METRICS]
ADAPT = ["adaptation.iterations=4", "adaptation.batch_size=2", "adaptation.progress=false"]
IMAGE = "astronaut_256"


def adapter_of(run_dir: Path, method: str) -> Path:
    (path,) = (run_dir / "images" / IMAGE).glob(f"{method}-*_adapter")
    return path


@pytest.fixture(scope="module")
def adapted_run(tmp_path_factory, provisioned_torch_home) -> Path:
    out = tmp_path_factory.mktemp("adapted")
    result = cli("run", [*FAST, "method=adir_self", *ADAPT, f"hydra.run.dir={out}"],
                 env={"TORCH_HOME": str(provisioned_torch_home), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.integration
def test_self_adaptation_writes_output_adapter_metrics_and_loss_curve(adapted_run: Path) -> None:
    assert stored(adapted_run, IMAGE, "adir_self").is_file() and (adapted_run / "grids" / f"{IMAGE}.png").is_file()
    metadata = read_metadata(adapter_of(adapted_run, "adir_self"))
    assert (metadata.base_model, metadata.task, metadata.image_ids) == ("adm_tiny", "sr4", ("A+y",))
    assert json.loads((adapted_run / "metrics.json").read_text()).keys() == {"adir_self"}
    (curve,) = (adapted_run / "images" / IMAGE).glob("adir_self-*_adaptation_loss.csv")
    with open(curve) as handle:
        losses = list(csv.DictReader(handle))
    assert [row["step"] for row in losses] == ["1", "2", "3", "4"] and all(row["lpips"] for row in losses)
    (row,) = rows(adapted_run)
    assert row["adaptation_images"] == ["A+y"]


@pytest.mark.integration
def test_the_saved_adapter_applied_to_the_prior_repeats_the_reconstruction(adapted_run: Path, tmp_path) -> None:
    run_app("run", [*FAST, f"model.adapter={adapter_of(adapted_run, 'adir_self')}"], tmp_path)
    assert stored(tmp_path, IMAGE, "gd").read_bytes() == stored(adapted_run, IMAGE, "adir_self").read_bytes()
    run_app("run", FAST, tmp_path / "stock")
    assert stored(tmp_path / "stock", IMAGE, "gd").read_bytes() != stored(tmp_path, IMAGE, "gd").read_bytes()


@pytest.mark.integration
def test_an_adapter_fitted_on_another_model_is_refused(adapted_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fitted on base model 'adm_tiny'"):
        run_app("run", [*FAST, f"model.adapter={adapter_of(adapted_run, 'adir_self')}", "model.name=other"], tmp_path)


@pytest.mark.integration
def test_knn_adaptation_retrieves_adapts_and_records_the_neighbours(
    tmp_path: Path, provisioned_torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADIR proper on a six-image collection: method=adir_knn, retrieval=knn, K = 3."""
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
    run_app("run", [*FAST, "method=adir_knn", "retrieval=knn", f"retrieval.index_dir={tmp_path / 'index'}",
                    "retrieval.encoder.image_size=128", "retrieval.k=3", *ADAPT], out)  # fmt: skip
    metadata = read_metadata(adapter_of(out, "adir_knn"))
    assert metadata.k == 3 and len(set(metadata.image_ids)) == 3
    assert set(metadata.image_ids) <= {f"img{i}.png" for i in range(6)}
    (row,) = rows(out)
    assert row["adaptation_images"] == list(metadata.image_ids)
