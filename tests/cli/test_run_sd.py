"""``adir-run`` with the Stable Diffusion priors on tiny pipelines: ×4 SR (model=sd_x4) and editing (sd_inpaint)."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from PIL import Image

from adir_exp.adaptation.artifacts import read_metadata
from adir_exp.cli.run import run
from adir_exp.data.images import load_image
from adir_exp.operators import BicubicDownsample, GaussianNoise, Inpainting
from adir_exp.paths import CONF_DIR
from adir_exp.reconstruction import degrade
from adir_exp.reconstruction_sd import collect_task_images
from tests.conftest import REPO_ROOT

FAST = [
    "model.inference.num_inference_steps=2",
    *(f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "niqe", "musiq_ava", "musiq_koniq")),
]  # fmt: skip


def adapt_on(paths: list[Path]) -> list[str]:
    """adaptation=knn on the given images instead of retrieved ones, 2 steps of 2 crops."""
    images = "adaptation.images=[" + ",".join(f"'{p}'" for p in paths) + "]"
    return ["adaptation=knn", images, "adaptation.iterations=2", "adaptation.batch_size=2",
            "adaptation.progress=false", "adaptation.log_every_n_steps=1"]  # fmt: skip


def run_in_process(overrides: list[str], out: Path) -> dict[str, float]:
    """``adir-run`` without a new interpreter: compose, set Hydra's runtime directory as the app would, call run."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="run", overrides=[*FAST, *overrides], return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return run(cfg)


@pytest.fixture(scope="module")
def x4_run(tmp_path_factory, tiny_upscaler_dir, adaptation_image_files, provisioned_torch_home) -> Path:
    """The real console entry point: 64 px ground truth → 16 px y → LoRA on 2 given images (the configured loss,
    LPIPS included) → 2-step upscale. lr 1e-2 so that two steps visibly move the adapted UNet."""
    out = tmp_path_factory.mktemp("x4_run")
    overrides = ["model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "model.image_size=32", "image_size=64",
                 *adapt_on(adaptation_image_files), "adaptation.lr=1e-2"]  # fmt: skip
    env = {**os.environ, "TORCH_HOME": str(provisioned_torch_home), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "adir_exp.cli.run", *FAST, *overrides, f"hydra.run.dir={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.integration
def test_sd_x4_run_adapts_on_given_images_and_writes_the_4x_output(x4_run: Path, adaptation_image_files) -> None:
    for name in ("grid.png", "measurement.png", "reconstruction.png", "adapter.safetensors", "metrics.json"):
        assert (x4_run / name).is_file(), name
    assert Image.open(x4_run / "measurement.png").size == (16, 16)
    assert Image.open(x4_run / "reconstruction.png").size == (64, 64)
    assert set(json.loads((x4_run / "metrics.json").read_text())) == {"psnr", "pseudo_inverse/psnr"}
    metadata = read_metadata(x4_run / "adapter.safetensors")
    assert (metadata.base_model, metadata.task) == ("sd_x4", "sr4")
    assert metadata.image_ids == tuple(str(p) for p in adaptation_image_files)
    assert any(name.startswith("down_blocks") for name in metadata.lora["targets"])  # the UNet's convolutions
    with open(x4_run / "logs" / "metrics.csv") as handle:
        losses = [row for row in csv.DictReader(handle) if row.get("adaptation/loss")]
    assert len(losses) == 2 and all(row["adaptation/lpips"] for row in losses)  # sd_x4's loss: v-MSE + LPIPS


@pytest.mark.integration
def test_sd_adapter_reload_repeats_the_reconstruction(
    x4_run: Path, tiny_upscaler_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    common = ["model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "image_size=64"]
    with caplog.at_level(logging.INFO):
        metrics = run_in_process([*common, f"adaptation.load={x4_run / 'adapter.safetensors'}"], tmp_path / "loaded")
    assert "not adapting again" in caplog.text
    adapted = (x4_run / "reconstruction.png").read_bytes()
    assert (tmp_path / "loaded" / "reconstruction.png").read_bytes() == adapted
    assert metrics == json.loads((x4_run / "metrics.json").read_text())
    run_in_process(common, tmp_path / "stock")
    assert (tmp_path / "stock" / "reconstruction.png").read_bytes() != adapted  # the adapter is what differs


@pytest.mark.integration
def test_sd_inpaint_edit_run_repaints_only_the_dropped_box(
    tiny_inpainter_dir: Path, adaptation_image_files, tmp_path: Path
) -> None:
    run_in_process(
        ["model=sd_inpaint", "task=edit", f"model.pipeline.path={tiny_inpainter_dir}", "model.image_size=64",
         "image_size=64", "model.inference.paste_unmasked=true", *adapt_on(adaptation_image_files)],
        tmp_path,
    )  # fmt: skip
    for name in ("grid.png", "reconstruction.png", "adapter.safetensors", "metrics.json"):
        assert (tmp_path / name).is_file(), name
    metadata = read_metadata(tmp_path / "adapter.safetensors")
    assert (metadata.base_model, metadata.task, metadata.k) == ("sd_inpaint", "edit", 2)
    truth, edited = load_image(tmp_path / "ground_truth.png"), load_image(tmp_path / "reconstruction.png")
    kept = Inpainting(mask="box", fraction=0.5).mask_for(64, 64).bool()
    assert (edited - truth).abs()[..., kept].max() <= 1 / 255 + 1e-6  # outside the box: the input pixels
    assert (edited - truth).abs()[..., ~kept].mean() > 0.05  # inside: repainted


@pytest.mark.integration
def test_sd_x4_without_weights_names_where_they_go(tmp_path: Path) -> None:
    env = {**os.environ, "ADIR_WEIGHTS": str(tmp_path / "weights"), "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-m", "adir_exp.cli.run", "model=sd_x4", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MissingWeightsError" in output
    assert str(tmp_path / "weights" / "stable-diffusion-x4-upscaler") in output
    assert "hf download stabilityai/stable-diffusion-x4-upscaler" in output and "never downloads" in output


def test_sd_x4_refuses_a_task_it_cannot_solve(tiny_upscaler_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"×4 super-resolution task \(task=sr4\), got BicubicDownsample"):
        run_in_process(["model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "task=sr8"], tmp_path)


class RecordingRetriever:
    """Stands in for ``Retriever``: records the queries, returns two grey 40×32 images."""

    k = 2

    def __init__(self) -> None:
        self.queries: list[tuple[str, object]] = []

    def neighbours(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(id=f"n{i}") for i in range(self.k)]

    def query_text(self, text: str) -> list[SimpleNamespace]:
        self.queries.append(("text", text))
        return self.neighbours()

    def query_image(self, y: torch.Tensor, ground_truth: torch.Tensor | None = None) -> list[SimpleNamespace]:
        self.queries.append(("image", tuple(y.shape)))
        return self.neighbours()

    @staticmethod
    def load_images(neighbours: list[SimpleNamespace]) -> list[Image.Image]:
        return [Image.new("RGB", (40, 32), (128, 128, 128)) for _ in neighbours]


def test_editing_retrieves_by_its_text_query_and_sr_by_y() -> None:
    ground_truth = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    noise = GaussianNoise(sigma=0.0)
    edit_task = OmegaConf.create({"name": "edit", "prompt": "a photo of a red car", "retrieval_query": "red cars"})
    retriever = RecordingRetriever()
    degradation = degrade(ground_truth, Inpainting(), noise, 0, torch.device("cpu"))
    found = collect_task_images("knn", degradation, retriever, None, edit_task)
    assert retriever.queries == [("text", "red cars")]
    assert found.ids == ["n0", "n1"] and found.expected == 2 and found.images[0].shape == (1, 3, 32, 40)

    retriever = RecordingRetriever()
    degradation = degrade(ground_truth, BicubicDownsample(4), noise, 0, torch.device("cpu"))
    collect_task_images("knn", degradation, retriever, None, OmegaConf.create({"name": "sr4"}))
    assert retriever.queries == [("image", (1, 3, 8, 8))]
