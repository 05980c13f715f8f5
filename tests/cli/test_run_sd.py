"""``adir-run`` with the Stable Diffusion priors on tiny pipelines: ×4 SR (model=sd_x4) and editing (sd_inpaint)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from adir_exp.adaptation.artifacts import read_metadata
from adir_exp.cli.config import ConfigError
from adir_exp.data.images import load_image
from adir_exp.operators import Inpainting
from tests.cli.helpers import CHEAP_METRICS, cli, rows, run_app, stored

FAST = ["model.inference.num_inference_steps=2", *CHEAP_METRICS]
IMAGE = "astronaut_256"


def adapt_on(paths: list[Path]) -> list[str]:
    """ADIR-SD on the given images instead of retrieved ones (the prior's own pipeline: sampler=none), 2 steps."""
    images = "methods.adir_given.source.images=[" + ",".join(f"'{p}'" for p in paths) + "]"
    return ["sampler=none", "method=adir_given", images, "adaptation.iterations=2", "adaptation.batch_size=2",
            "adaptation.progress=false"]  # fmt: skip


def adapter_of(run_dir: Path) -> Path:
    (path,) = (run_dir / "images" / IMAGE).glob("adir_given-*_adapter")
    return path


@pytest.fixture(scope="module")
def x4_run(tmp_path_factory, tiny_upscaler_dir, adaptation_image_files, provisioned_torch_home) -> Path:
    """The real console entry point: 64 px ground truth → 16 px y → LoRA on 2 given images (the configured loss,
    LPIPS included) → 2-step upscale. lr 1e-2 so that two steps visibly move the adapted UNet."""
    out = tmp_path_factory.mktemp("x4_run")
    overrides = ["model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "model.image_size=32", "image_size=64",
                 *adapt_on(adaptation_image_files), "adaptation.lr=1e-2"]  # fmt: skip
    result = cli("run", [*FAST, *overrides, f"hydra.run.dir={out}"],
                 env={"TORCH_HOME": str(provisioned_torch_home), "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.integration
def test_sd_x4_run_adapts_on_given_images_and_writes_the_4x_output(x4_run: Path, adaptation_image_files) -> None:
    assert Image.open(stored(x4_run, IMAGE, "measurement")).size == (16, 16)
    assert Image.open(stored(x4_run, IMAGE, "adir_given")).size == (64, 64)
    metadata = read_metadata(adapter_of(x4_run))
    assert (metadata.base_model, metadata.task) == ("sd_x4", "sr4")
    assert (adapter_of(x4_run) / "pytorch_lora_weights.safetensors").is_file()  # diffusers' pipeline layout too
    assert metadata.image_ids == tuple(str(p) for p in adaptation_image_files)
    assert any(name.startswith("down_blocks") for name in metadata.lora["targets"])  # the UNet's convolutions
    (curve,) = (x4_run / "images" / IMAGE).glob("adir_given-*_adaptation_loss.csv")
    assert "lpips" in curve.read_text().splitlines()[0]  # sd_x4's loss: v-MSE + LPIPS


@pytest.mark.integration
def test_sd_adapter_applied_to_the_prior_repeats_the_reconstruction(x4_run: Path, tiny_upscaler_dir: Path, tmp_path) -> None:
    common = [*FAST, "model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "image_size=64", "method=sd"]
    run_app("run", [*common, f"model.adapter={adapter_of(x4_run)}"], tmp_path / "loaded")
    adapted = stored(x4_run, IMAGE, "adir_given").read_bytes()
    assert stored(tmp_path / "loaded", IMAGE, "sd").read_bytes() == adapted
    run_app("run", common, tmp_path / "stock")
    assert stored(tmp_path / "stock", IMAGE, "sd").read_bytes() != adapted  # the adapter is what differs


@pytest.mark.integration
def test_sd_inpaint_edit_run_repaints_only_the_dropped_box(
    tiny_inpainter_dir: Path, adaptation_image_files, tmp_path: Path
) -> None:
    run_app("run", [*FAST, "model=sd_inpaint", "task=edit", f"model.pipeline.path={tiny_inpainter_dir}",
                    "model.image_size=64", "image_size=64", "model.inference.paste_unmasked=true",
                    *adapt_on(adaptation_image_files)], tmp_path)  # fmt: skip
    metadata = read_metadata(adapter_of(tmp_path))
    assert (metadata.base_model, metadata.task, metadata.k) == ("sd_inpaint", "edit", 2)
    truth, edited = load_image(stored(tmp_path, IMAGE, "ground_truth")), load_image(stored(tmp_path, IMAGE, "adir_given"))
    kept = Inpainting(mask="box", fraction=0.5).mask_for(64, 64).bool()
    assert (edited - truth).abs()[..., kept].max() <= 1 / 255 + 1e-6  # outside the box: the input pixels
    assert (edited - truth).abs()[..., ~kept].mean() > 0.05  # inside: repainted
    assert rows(tmp_path)[0]["adaptation_images"] == [str(p) for p in adaptation_image_files]


@pytest.mark.integration
def test_sd_x4_without_weights_names_where_they_go(tmp_path: Path) -> None:
    env = {"ADIR_WEIGHTS": str(tmp_path / "weights"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": None}
    result = cli("run", ["model=sd_x4", "method=sd", f"hydra.run.dir={tmp_path / 'run'}"], env=env, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path / "weights" / "stable-diffusion-x4-upscaler") in result.stderr
    assert "hf download stabilityai/stable-diffusion-x4-upscaler" in result.stderr and "never downloads" in result.stderr


def test_sd_x4_refuses_a_task_it_cannot_solve(tiny_upscaler_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"×4 super-resolution task \(task=sr4\), got BicubicDownsample"):
        run_app("run", [*FAST, "model=sd_x4", f"model.pipeline.path={tiny_upscaler_dir}", "task=sr8", "method=sd"],
                tmp_path)
