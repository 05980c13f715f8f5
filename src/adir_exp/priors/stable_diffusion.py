"""Stable Diffusion priors for ADIR-SD: the x4 upscaler (super-resolution) and SD 2 inpainting (text-guided editing).

Both are user-supplied diffusers snapshots, read from disk only: a directory (default under ``$ADIR_WEIGHTS``)
or, failing that, the Hugging Face cache with ``local_files_only=True``. Nothing here contacts the hub.

Inference follows the paper: the (LoRA-adapted) UNet runs through the stock diffusers pipeline, without ADIR's
measurement guidance (eq. 17). Image tensors going in and out of :func:`upscale` and :func:`edit` use the
framework's image range [0, 1] (``adir_exp.data.images.to_image_range`` converts a model-range measurement);
that is also the range diffusers expects for tensors, so nothing is rescaled behind the user's back.

The safety checker and the invisible watermark are not loaded: both change pixels and would bias the metrics.
This is the only module that knows the SD pipeline classes: each prior checks here which tasks it can solve.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import (
    DiffusionPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionUpscalePipeline,
)
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache
from torch import nn

from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.data.images import to_image_range, to_model_range
from adir_exp.operators import BicubicDownsample, Inpainting, Physics
from adir_exp.priors.base import Prior, PriorConfigError, SamplerFactory
from adir_exp.runtime import resolve_device
from adir_exp.samplers import Measurement
from adir_exp.weights import MissingWeightsError, entry

SD_UPSCALER_REPO = "stabilityai/stable-diffusion-x4-upscaler"
SD_INPAINTING_REPO = "stabilityai/stable-diffusion-2-inpainting"
SD_UPSCALER_KEY = "sd-x4-upscaler"
SD_INPAINTING_KEY = "sd-inpainting"
MODEL_INDEX = "model_index.json"
RANGE_TOLERANCE = 1e-4


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: float16 on CUDA (inference), float32 elsewhere (CPU half-precision kernels are slow or missing)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, {', '.join(names)}")
    return names[dtype]


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache as the environment names it now (huggingface_hub freezes it at import).

    Console scripts point ``HF_HOME`` at ``$ADIR_HOME/huggingface`` unless it is set (``configure_environment``).
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(hub_constants.HF_HUB_CACHE)


def locate_pipeline(key: str, repo_id: str, path: str | Path | None = None) -> Path:
    """The diffusers directory to load: ``path`` if given, else the registry's default, else the HF cache snapshot.

    A directory counts only with its ``model_index.json``. Failing all, raises a
    :class:`~adir_exp.weights.MissingWeightsError` naming the directory, the repo id and how to put it there.
    """
    registered = entry(key)
    if path is not None:
        directory = Path(path).expanduser()
        if (directory / MODEL_INDEX).is_file():
            return directory
        raise MissingWeightsError(dataclasses.replace(registered, locate=lambda: directory), _placement_hint(repo_id))
    if registered.present():
        return registered.path
    cache = hf_hub_cache()
    cached = try_to_load_from_cache(repo_id, MODEL_INDEX, cache_dir=cache)
    if isinstance(cached, str):
        return Path(cached).parent
    raise MissingWeightsError(
        registered,
        f"{_placement_hint(repo_id)} No snapshot of {repo_id} in the Hugging Face cache ({cache}) either.",
    )


def _placement_hint(repo_id: str) -> str:
    return (
        f"On a machine with hub access, `hf download {repo_id} --local-dir DIR` fetches it; copy DIR to that path. "
        f"This framework never downloads it."
    )


def apply_memory_options(
    pipeline: DiffusionPipeline,
    attention_slicing: bool | str | int = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
) -> None:
    """Trade speed for memory. Only VAE tiling matters for SD x4 at 256→1024 (docs/stable_diffusion.md).

    ``attention_slicing`` (True = "auto", or a slice size) runs UNet attention head-group by head-group;
    ``vae_tiling`` encodes/decodes in overlapping tiles, bounding the VAE's full-resolution self-attention;
    ``vae_slicing`` decodes a batch one image at a time.
    """
    if attention_slicing:
        pipeline.enable_attention_slicing("auto" if attention_slicing is True else attention_slicing)
    if vae_tiling:
        pipeline.vae.enable_tiling()
    if vae_slicing:
        pipeline.vae.enable_slicing()


def load_sd_upscaler(
    path: str | Path | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    attention_slicing: bool | str | int = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    variant: str | None = None,
) -> StableDiffusionUpscalePipeline:
    """The SD x4 upscaler from ``path`` (default ``$ADIR_WEIGHTS/stable-diffusion-x4-upscaler``) or the HF cache.

    The VAE stays float32 whatever ``dtype`` is: Stability's config notes its decoder breaks in half precision,
    and diffusers would upcast it at every decode anyway. ``variant`` selects e.g. the ``fp16`` weight files.
    """
    directory = locate_pipeline(SD_UPSCALER_KEY, SD_UPSCALER_REPO, path)
    target = resolve_device(device)
    pipeline = StableDiffusionUpscalePipeline.from_pretrained(
        directory,
        dtype={"default": resolve_dtype(dtype, target), "vae": torch.float32},
        variant=variant,
        use_safetensors=True,  # a pickled .bin beside (or instead of) the weights is never read
        local_files_only=True,
        safety_checker=None,
        watermarker=None,
    )
    apply_memory_options(pipeline, attention_slicing, vae_tiling, vae_slicing)
    return pipeline.to(target)


def load_sd_inpaint(
    path: str | Path | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    attention_slicing: bool | str | int = False,
    vae_tiling: bool = False,
    vae_slicing: bool = False,
    variant: str | None = None,
) -> StableDiffusionInpaintPipeline:
    """SD 2 inpainting from ``path`` (default ``$ADIR_WEIGHTS/stable-diffusion-2-inpainting``) or the HF cache.

    Any SD inpainting snapshot with a 9-channel UNet works (e.g. SD 1.5 inpainting via ``path``).
    """
    directory = locate_pipeline(SD_INPAINTING_KEY, SD_INPAINTING_REPO, path)
    target = resolve_device(device)
    pipeline = StableDiffusionInpaintPipeline.from_pretrained(
        directory,
        dtype=resolve_dtype(dtype, target),
        variant=variant,
        use_safetensors=True,  # a pickled .bin beside (or instead of) the weights is never read
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    apply_memory_options(pipeline, attention_slicing, vae_tiling, vae_slicing)
    return pipeline.to(target)


def check_unit_range(image: torch.Tensor, name: str) -> None:
    """Reject images outside [0, 1]: diffusers would silently treat a [−1, 1] tensor as already normalised."""
    if image.ndim != 4:
        raise ValueError(f"{name} must be a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    low, high = image.min().item(), image.max().item()
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name} must lie in [0, 1] (the framework's image range), got [{low:.3g}, {high:.3g}]; "
            f"convert a model-range tensor with adir_exp.data.images.to_image_range"
        )


def upscale(
    pipeline: StableDiffusionUpscalePipeline,
    y_lowres: torch.Tensor,
    num_inference_steps: int = 500,
    noise_level: int = 20,
    generator: torch.Generator | None = None,
    prompt: str = "",
    guidance_scale: float = 1.0,
) -> torch.Tensor:
    """×4 super-resolution of ``y_lowres`` (B, 3, h, w) in [0, 1] → (B, 3, 4h, 4w) in [0, 1].

    ``noise_level`` must match the one the adaptation used. With the default empty prompt, classifier-free
    guidance has nothing to amplify, so ``guidance_scale=1`` (off) halves the cost at the same result.
    """
    check_unit_range(y_lowres, "y_lowres")
    output = pipeline(
        prompt=[prompt] * y_lowres.shape[0],
        image=y_lowres,
        num_inference_steps=num_inference_steps,
        noise_level=noise_level,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="pt",
    )
    return output.images


def edit(
    pipeline: StableDiffusionInpaintPipeline,
    image: torch.Tensor,
    mask: torch.Tensor,
    prompt: str,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    generator: torch.Generator | None = None,
    negative_prompt: str | None = None,
    paste_unmasked: bool = False,
) -> torch.Tensor:
    """Repaint the masked region of ``image`` (B, 3, H, W) in [0, 1] to follow ``prompt``; returns [0, 1].

    ``mask`` is (B or 1, 1, H, W) with 1 = region to regenerate (diffusers' convention, the complement of
    :class:`~adir_exp.operators.Inpainting`'s keep mask). The inpainting UNet sees the unmasked pixels only
    through the VAE, so outside the mask the output is a VAE re-synthesis, close to but not equal to the input;
    ``paste_unmasked=True`` copies the input pixels back there. H and W must be multiples of the VAE factor.
    """
    check_unit_range(image, "image")
    batch, _, height, width = image.shape
    factor = pipeline.vae_scale_factor
    if height % factor or width % factor:
        raise ValueError(f"image sides must be multiples of {factor} (the VAE's downsampling), got {height}×{width}")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:] or mask.shape[0] not in (1, batch):
        raise ValueError(f"mask must have shape ({batch} or 1, 1, {height}, {width}), got {tuple(mask.shape)}")
    mask = mask.expand(batch, -1, -1, -1).to(image)
    output = pipeline(
        prompt=[prompt] * batch,
        image=image,
        mask_image=mask,
        height=height,
        width=width,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        negative_prompt=None if negative_prompt is None else [negative_prompt] * batch,
        generator=generator,
        output_type="pt",
    )
    edited = output.images.to(image)
    if paste_unmasked:
        keep = (mask < 0.5).to(image)
        edited = keep * image + (1 - keep) * edited
    return edited


class SDUpscaling:
    """x̂ = the x4 upscaler's output for y, without measurement guidance (the paper's SD inference)."""

    def __init__(
        self,
        pipeline: StableDiffusionUpscalePipeline,
        num_inference_steps: int = 500,
        noise_level: int = 20,
        guidance_scale: float = 1.0,
    ) -> None:
        self.pipeline = pipeline
        self.num_inference_steps = num_inference_steps
        self.noise_level = noise_level
        self.guidance_scale = guidance_scale

    def sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """(B, 3, 4h, 4w) in [−1, 1] from the low-res y (model range) of ``measurement``."""
        measurement.operator.check_measurement(measurement.y, tuple(shape))
        high = upscale(
            self.pipeline,
            to_image_range(measurement.y),
            num_inference_steps=self.num_inference_steps,
            noise_level=self.noise_level,
            generator=generator,
            guidance_scale=self.guidance_scale,
        )
        return to_model_range(high.to(device))


class SDEditing:
    """x̂ = SD inpainting of the region the task's :class:`Inpainting` operator drops, following ``prompt``."""

    def __init__(
        self,
        pipeline: StableDiffusionInpaintPipeline,
        prompt: str,
        negative_prompt: str | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        paste_unmasked: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.paste_unmasked = paste_unmasked

    def sample(
        self,
        shape: tuple[int, ...],
        measurement: Measurement,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """(B, 3, H, W) in [−1, 1]: y (the kept pixels, model range) with the dropped region repainted."""
        operator = measurement.operator
        operator.check_measurement(measurement.y, tuple(shape))
        keep = operator.mask_for(*shape[-2:]).to(measurement.y)
        edited = edit(
            self.pipeline,
            to_image_range(measurement.y),
            (1 - keep)[None, None],  # diffusers: 1 = regenerate
            self.prompt,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            negative_prompt=self.negative_prompt,
            paste_unmasked=self.paste_unmasked,
        )
        return to_model_range(edited.to(device))


ObjectiveFactory = Callable[..., AdaptationObjective]


class StableDiffusionPrior(Prior):
    """What the SD priors share: a diffusers pipeline whose UNet is the adapted network, its own reconstruction
    (``inference``: the pipeline's call settings) instead of a configured sampler, and frozen VAE/text encoder
    shared between copies."""

    def __init__(
        self,
        name: str,
        image_size: int,
        pipeline: DiffusionPipeline,
        objective: ObjectiveFactory,
        inference: dict,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
    ) -> None:
        super().__init__(name, image_size)
        self.pipeline = pipeline
        self.make_objective = objective
        self.inference = dict(inference)
        self.apply_adapter(adapter, merge_adapter)

    @property
    def network(self) -> nn.Module:
        return self.pipeline.unet

    @property
    def device(self) -> torch.device:
        return self.pipeline.unet.device

    def copy(self) -> StableDiffusionPrior:
        twin = copy.copy(self)
        twin.pipeline = copy.copy(self.pipeline)
        twin.pipeline.unet = copy.deepcopy(self.pipeline.unet)
        return twin

    def to(self, device: torch.device | str) -> StableDiffusionPrior:
        self.pipeline.to(device)
        return self

    def check_sampler(self, sampler: SamplerFactory | None) -> None:
        if sampler is not None:
            raise PriorConfigError(
                f"{self.name} reconstructs with its diffusers pipeline (model.inference), not a sampler: "
                f"select method=sd, adir_sd_knn or adir_sd_text (or another method with sampler=none) instead of a "
                f"sampler-based one (gd, dps, ddrm, adir_*)"
            )


class SDUpscalerPrior(StableDiffusionPrior):
    """The SD x4 upscaler: ×4 super-resolution only (y is its low-resolution input)."""

    FACTOR = 4

    def check_task(self, physics: Physics) -> None:
        operator = physics.operator
        if not (isinstance(operator, BicubicDownsample) and operator.factor == self.FACTOR):
            raise PriorConfigError(
                f"the SD x4 upscaler needs a ×4 super-resolution task (task=sr4), got {type(operator).__name__}"
            )

    def objective(self, physics: Physics) -> AdaptationObjective:
        self.check_task(physics)
        return self.make_objective(pipeline=self.pipeline, operator=physics.operator)

    def reconstructor(self, physics: Physics, sampler: SamplerFactory | None = None) -> SDUpscaling:
        self.check_sampler(sampler)
        self.check_task(physics)
        return SDUpscaling(self.pipeline, **self.inference)


class SDInpaintingPrior(StableDiffusionPrior):
    """SD 2 inpainting: repaints the region a masking task drops, following ``prompt`` (text-guided editing)."""

    def __init__(self, *args, prompt: str = "", negative_prompt: str | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prompt = prompt or ""
        self.negative_prompt = negative_prompt

    def check_task(self, physics: Physics) -> None:
        if not isinstance(physics.operator, Inpainting):
            raise PriorConfigError(
                f"SD inpainting needs a masking task (task=edit or task=inpainting), got "
                f"{type(physics.operator).__name__}"
            )

    def objective(self, physics: Physics) -> AdaptationObjective:
        self.check_task(physics)
        return self.make_objective(pipeline=self.pipeline, prompt=self.prompt)

    def reconstructor(self, physics: Physics, sampler: SamplerFactory | None = None) -> SDEditing:
        self.check_sampler(sampler)
        self.check_task(physics)
        return SDEditing(self.pipeline, self.prompt, negative_prompt=self.negative_prompt, **self.inference)
