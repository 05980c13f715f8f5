"""The Stable Diffusion benchmark rows on tiny pipelines: Table 3 (×4 SR) and Fig. 3 (editing) end to end, and
ADIR-SD's per-image copy of the UNet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from PIL import Image

from adir_exp.adaptation.lora import lora_parameters
from adir_exp.benchmark.methods import MethodContext
from adir_exp.benchmark.sd_methods import ADIRSDReconstruction, SDReconstruction
from adir_exp.cli.bench import run as bench_run
from adir_exp.data.images import to_model_range
from adir_exp.models.stable_diffusion import load_sd_upscaler
from adir_exp.operators import BicubicDownsample
from adir_exp.paths import CONF_DIR
from tests.conftest import REPO_ROOT

METRICS = [f"~metrics.metrics.{m}" for m in ("ssim", "lpips", "niqe", "musiq_ava", "musiq_koniq")]


def tiny_sd(pipeline_dir: Path, image_files: list[Path], crop: int) -> list[str]:
    """A tiny pipeline, 2 inference steps, ADIR-SD on the given images (2 steps of 2 crops, no LPIPS term)."""
    images = "adir.images=[" + ",".join(f"'{p}'" for p in image_files) + "]"
    return [f"model.pipeline.path={pipeline_dir}", f"model.image_size={crop}", "model.inference.num_inference_steps=2",
            images, "adir.iterations=2", "adir.batch_size=2", "adir.lr=1e-2", "adir.progress=false",
            *METRICS]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("div2k")
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray((rng.random((48, 40, 3)) * 255).astype(np.uint8)).save(root / f"08{i:02d}.png")
    return root


def rows(results_dir: Path) -> list[dict]:
    return [json.loads(line) for path in results_dir.glob("results*.jsonl") for line in path.read_text().splitlines()]


@pytest.mark.integration
def test_table3_sd_sr4_runs_bicubic_sd_and_adir_sd(
    tiny_upscaler_dir: Path, adaptation_image_files: list[Path], dataset: Path, tmp_path: Path
) -> None:
    """``adir-bench experiment=table3_sd_sr4`` itself, at 32 px (8 px inputs) instead of 1024."""
    results = tmp_path / "results"
    overrides = ["experiment=table3_sd_sr4", *tiny_sd(tiny_upscaler_dir, adaptation_image_files, 32),
                 "model.objective.lpips_weight=0", "benchmark.size=32", f"benchmark.dataset={dataset}",
                 f"benchmark.results_dir={results}", f"hydra.run.dir={tmp_path / 'hydra'}"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "adir_exp.cli.bench", *overrides], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    written = rows(results)
    assert sorted((r["method"], r["image"]) for r in written) == [
        (method, image) for method in ("adir_sd_knn", "bicubic", "sd") for image in ("0800", "0801")
    ]
    assert all(np.isfinite(r["psnr"]) for r in written)
    summary = (results / "summary.md").read_text()
    assert all(f"| {method} | 2 |" in summary for method in ("bicubic", "sd", "adir_sd_knn"))
    assert Image.open(results / "images" / "0800" / "adir_sd_knn.png").size == (32, 32)
    assert len(list((results / "grids").glob("*.png"))) == 2


@pytest.mark.integration
def test_fig3_editing_runs_sd_and_adir_sd_inpainting(
    tiny_inpainter_dir: Path, adaptation_image_files: list[Path], dataset: Path, tmp_path: Path
) -> None:
    """``experiment=fig3_editing`` in process (same code path as the console script, without its import cost)."""
    overrides = ["experiment=fig3_editing", *tiny_sd(tiny_inpainter_dir, adaptation_image_files, 64),
                 "benchmark.size=64", f"benchmark.dataset={dataset}", f"benchmark.results_dir={tmp_path}"]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(tmp_path / "hydra")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    bench_run(cfg)
    assert sorted((r["method"], r["image"]) for r in rows(tmp_path)) == [
        (method, image) for method in ("adir_sd_knn", "sd") for image in ("0800", "0801")
    ]
    assert "adir_sd_knn" in (tmp_path / "summary.md").read_text()
    assert len(list((tmp_path / "grids").glob("*.png"))) == 2


def sd_x4_methods(pipeline_dir: Path, image_files: list[Path]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=["model=sd_x4", "model.objective.lpips_weight=0",
                                                       *tiny_sd(pipeline_dir, image_files, 32)])  # fmt: skip
    return cfg.methods


def test_adir_sd_adapts_a_copy_and_leaves_the_shared_pipeline_alone(
    tiny_upscaler_dir: Path, adaptation_image_files: list[Path], tmp_path: Path
) -> None:
    methods = sd_x4_methods(tiny_upscaler_dir, adaptation_image_files)
    stock, adir = instantiate(methods.sd), instantiate(methods.adir_sd_knn)
    assert isinstance(stock, SDReconstruction) and isinstance(adir, ADIRSDReconstruction)
    pipeline = load_sd_upscaler(tiny_upscaler_dir, device="cpu")
    unet = pipeline.unet
    weights = {k: v.clone() for k, v in unet.state_dict().items()}
    truth = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    operator = BicubicDownsample(4)
    y = operator.A(to_model_range(truth))
    context = MethodContext(pipeline, None, torch.device("cpu"), "img", truth, tmp_path)

    def generator() -> torch.Generator:
        return torch.Generator().manual_seed(1)

    before = stock(y, operator, context, generator())
    adapted = adir(y, operator, context, generator())
    after = stock(y, operator, context, generator())
    assert before.shape == adapted.shape == (1, 3, 32, 32) and adapted.abs().max() <= 1
    assert torch.equal(before, after)  # the stock row never sees ADIR-SD's adapters
    assert not torch.allclose(adapted, before, atol=1e-3)
    assert pipeline.unet is unet and not lora_parameters(unet)
    assert all(torch.equal(v, weights[k]) for k, v in unet.state_dict().items())


def test_sd_methods_need_an_sd_model(tiny_upscaler_dir: Path, adaptation_image_files: list[Path], tmp_path) -> None:
    stock = instantiate(sd_x4_methods(tiny_upscaler_dir, adaptation_image_files).sd)
    context = MethodContext(torch.nn.Identity(), None, torch.device("cpu"), "img", torch.zeros(1, 3, 32, 32), tmp_path)
    with pytest.raises(ValueError, match=r"model=sd_x4 or model=sd_inpaint\), got Identity"):
        stock(torch.zeros(1, 3, 8, 8), BicubicDownsample(4), context, torch.Generator())
