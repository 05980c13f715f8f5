"""SD loaders, inference and configs on tiny pipelines written in the diffusers layout and read back offline."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from adir_exp.adaptation.sd_objectives import SDUpscaleObjective
from adir_exp.cli.config import CONF_DIR
from adir_exp.priors.stable_diffusion import (
    SD_INPAINTING_KEY,
    SD_INPAINTING_REPO,
    SD_UPSCALER_KEY,
    SD_UPSCALER_REPO,
    edit,
    load_sd_inpaint,
    load_sd_upscaler,
    locate_pipeline,
    resolve_dtype,
    upscale,
)
from adir_exp.weights import MissingWeightsError, entry
from tests.priors.sd_tiny import tiny_inpainter, tiny_tokenizer, tiny_upscaler

LOADERS = {
    "upscaler": (load_sd_upscaler, SD_UPSCALER_KEY, SD_UPSCALER_REPO),
    "inpaint": (load_sd_inpaint, SD_INPAINTING_KEY, SD_INPAINTING_REPO),
}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny tensors: OpenMP hand-offs between threads cost far more than the arithmetic on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty weight dir and HF cache: whatever a test finds, it put there itself."""
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def pipeline_dirs(kind: str, tiny_upscaler_dir: Path, tiny_inpainter_dir: Path) -> Path:
    return tiny_upscaler_dir if kind == "upscaler" else tiny_inpainter_dir


def test_fixture_tokenizer_tokenizes_offline() -> None:
    tokenizer = tiny_tokenizer()
    ids = tokenizer("A photo of a red car!").input_ids
    tokens = tokenizer.convert_ids_to_tokens(ids)
    words = ["a</w>", "photo</w>", "of</w>", "a</w>", "red</w>", "car</w>", "!</w>"]
    assert tokens == ["<|startoftext|>", *words, "<|endoftext|>"]
    unknown = tokenizer.convert_ids_to_tokens(tokenizer("xyz").input_ids)
    assert unknown == ["<|startoftext|>", "x", "y", "z</w>", "<|endoftext|>"]  # unmerged words fall back to bytes
    padded = tokenizer("a cat", padding="max_length", max_length=tokenizer.model_max_length).input_ids
    assert len(padded) == 77 and max(padded) < len(tokenizer)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a photo of a red car !"


def test_upscaler_loads_back_what_was_saved(tiny_upscaler_dir: Path) -> None:
    pipeline = load_sd_upscaler(tiny_upscaler_dir, device="cpu")
    reference = tiny_upscaler().unet.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in pipeline.unet.state_dict().items())
    assert isinstance(pipeline.scheduler, DDIMScheduler) and pipeline.scheduler.config.prediction_type == "v_prediction"
    assert isinstance(pipeline.low_res_scheduler, DDPMScheduler)
    assert pipeline.unet.config.in_channels == 7 and pipeline.unet.config.num_class_embeds == 1000
    assert pipeline.vae_scale_factor == 4 and pipeline.unet.dtype == torch.float32


def test_inpaint_loads_back_what_was_saved(tiny_inpainter_dir: Path) -> None:
    pipeline = load_sd_inpaint(tiny_inpainter_dir, device="cpu")
    reference = tiny_inpainter().unet.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in pipeline.unet.state_dict().items())
    assert isinstance(pipeline.scheduler, PNDMScheduler) and pipeline.scheduler.config.prediction_type == "epsilon"
    assert pipeline.unet.config.in_channels == 9 and pipeline.vae_scale_factor == 8
    assert pipeline.safety_checker is None


def test_half_precision_keeps_the_upscaler_vae_in_float32(tiny_upscaler_dir: Path) -> None:
    pipeline = load_sd_upscaler(tiny_upscaler_dir, dtype="float16", device="cpu")
    assert pipeline.unet.dtype == torch.float16 and pipeline.text_encoder.dtype == torch.float16
    assert pipeline.vae.dtype == torch.float32


def test_memory_options_are_applied(tiny_upscaler_dir: Path) -> None:
    plain = load_sd_upscaler(tiny_upscaler_dir, device="cpu")
    assert not plain.vae.use_tiling and not plain.vae.use_slicing
    pipeline = load_sd_upscaler(tiny_upscaler_dir, device="cpu", attention_slicing=True, vae_tiling=True, vae_slicing=True)
    assert pipeline.vae.use_tiling and pipeline.vae.use_slicing
    processors = {type(p).__name__ for p in pipeline.unet.attn_processors.values()}
    assert processors == {"SlicedAttnProcessor"}


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype(torch.float64, torch.device("cpu")) == torch.float64
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))


@pytest.mark.parametrize("kind", LOADERS)
def test_missing_default_directory_names_dir_repo_and_cache(kind: str, offline_caches: Path) -> None:
    loader, key, repo = LOADERS[kind]
    with pytest.raises(MissingWeightsError) as error:
        loader()
    message = str(error.value)
    assert str(offline_caches / "weights" / entry(key).path.name) in message
    assert repo in message and "never downloads" in message
    assert str(offline_caches / "hf" / "hub") in message
    assert isinstance(error.value, FileNotFoundError)


@pytest.mark.parametrize("kind", LOADERS)
def test_missing_explicit_directory_names_it(kind: str, tmp_path: Path) -> None:
    loader, _, repo = LOADERS[kind]
    empty = tmp_path / "half-copied"
    empty.mkdir()  # a directory without model_index.json is not a pipeline
    with pytest.raises(MissingWeightsError, match="never downloads") as error:
        loader(empty)
    assert str(empty) in str(error.value) and repo in str(error.value)


@pytest.mark.parametrize("kind", LOADERS)
def test_default_directory_is_found(kind: str, offline_caches: Path, tiny_upscaler_dir: Path, tiny_inpainter_dir: Path) -> None:
    loader, key, _ = LOADERS[kind]
    shutil.copytree(pipeline_dirs(kind, tiny_upscaler_dir, tiny_inpainter_dir), offline_caches / "weights" / entry(key).path.name)
    pipeline = loader(device="cpu")
    assert pipeline.unet.config.in_channels == (7 if kind == "upscaler" else 9)


@pytest.mark.parametrize("kind", LOADERS)
def test_hugging_face_cache_snapshot_is_found(
    kind: str, offline_caches: Path, tiny_upscaler_dir: Path, tiny_inpainter_dir: Path
) -> None:
    loader, key, repo = LOADERS[kind]
    repo_dir = offline_caches / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(pipeline_dirs(kind, tiny_upscaler_dir, tiny_inpainter_dir), repo_dir / "snapshots" / "0123abc")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0123abc")
    assert locate_pipeline(key, repo) == repo_dir / "snapshots" / "0123abc"
    assert loader(device="cpu").unet.config.in_channels == (7 if kind == "upscaler" else 9)


@pytest.mark.parametrize("kind", LOADERS)
def test_registry_and_loader_agree_on_the_model(kind: str) -> None:
    _, key, repo = LOADERS[kind]
    assert repo in entry(key).origin and entry(key).is_dir


def test_upscale_returns_a_four_times_larger_image(tiny_upscaler_dir: Path) -> None:
    pipeline = load_sd_upscaler(tiny_upscaler_dir, device="cpu")
    y = torch.rand(2, 3, 8, 12)
    first = upscale(pipeline, y, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    again = upscale(pipeline, y, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert first.shape == (2, 3, 32, 48)
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)


def test_upscale_rejects_model_range_input(tiny_upscaler_dir: Path) -> None:
    pipeline = load_sd_upscaler(tiny_upscaler_dir, device="cpu")
    with pytest.raises(ValueError, match=r"\[0, 1\].*to_image_range"):
        upscale(pipeline, torch.rand(1, 3, 8, 8) * 2 - 1, num_inference_steps=2)


def test_edit_repaints_the_masked_region_only_when_pasting(tiny_inpainter_dir: Path) -> None:
    pipeline = load_sd_inpaint(tiny_inpainter_dir, device="cpu")
    image = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 8:40] = 1
    kwargs = {"prompt": "a red car", "num_inference_steps": 2, "guidance_scale": 7.5}
    raw = edit(pipeline, image, mask, generator=torch.Generator().manual_seed(0), **kwargs)
    pasted = edit(pipeline, image, mask, generator=torch.Generator().manual_seed(0), paste_unmasked=True, **kwargs)
    assert raw.shape == pasted.shape == image.shape
    assert raw.min() >= 0 and raw.max() <= 1
    keep = mask.expand_as(image) < 0.5
    assert torch.equal(pasted[keep], image[keep])  # the input survives outside the mask
    assert torch.equal(pasted[~keep], raw[~keep])  # and the generated content inside it
    assert not torch.allclose(raw[keep], image[keep], atol=1e-2)  # without pasting it is a VAE re-synthesis


def test_edit_checks_shapes(tiny_inpainter_dir: Path) -> None:
    pipeline = load_sd_inpaint(tiny_inpainter_dir, device="cpu")
    with pytest.raises(ValueError, match="multiples of 8"):
        edit(pipeline, torch.rand(1, 3, 60, 64), torch.zeros(1, 1, 60, 64), "a cat", num_inference_steps=2)
    with pytest.raises(ValueError, match="mask must have shape"):
        edit(pipeline, torch.rand(1, 3, 64, 64), torch.zeros(1, 3, 64, 64), "a cat", num_inference_steps=2)


def compose_run(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


@pytest.mark.parametrize("model", ["sd_x4", "sd_inpaint"])
def test_model_config_without_weights_fails_with_the_clear_error(model: str) -> None:
    cfg = compose_run([f"model={model}"])
    with pytest.raises(InstantiationException) as error:
        instantiate(cfg.model.pipeline)
    assert isinstance(error.value.__cause__, MissingWeightsError)
    assert "never downloads" in str(error.value.__cause__)


def test_sd_x4_config_builds_pipeline_and_objective(offline_caches: Path, tiny_upscaler_dir: Path) -> None:
    shutil.copytree(tiny_upscaler_dir, offline_caches / "weights" / entry(SD_UPSCALER_KEY).path.name)
    cfg = compose_run(["model=sd_x4", "task=sr4", "model.objective.lpips_weight=0"])
    pipeline = instantiate(cfg.model.pipeline)
    assert pipeline.vae.use_tiling and pipeline.unet.dtype == torch.float32
    objective = instantiate(cfg.model.objective)(pipeline=pipeline, operator=instantiate(cfg.task.physics.operator))
    assert isinstance(objective, SDUpscaleObjective) and objective.noise_level == cfg.model.inference.noise_level
    assert torch.isfinite(objective.loss(torch.rand(2, 3, 32, 32) * 2 - 1)["loss"])


def test_edit_task_config() -> None:
    cfg = compose_run(["model=sd_inpaint", "task=edit"])
    operator = instantiate(cfg.task.physics.operator)
    keep = operator.mask_for(64, 64)
    assert 0 < keep.mean() < 1 and isinstance(cfg.task.prompt, str) and cfg.task.prompt
