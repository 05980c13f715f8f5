"""ADIR-SD reconstruction from configs: the stock diffusers pipelines behind the pixel samplers' interface.

``adir-run`` and ``adir-bench`` reconstruct pixel-space priors with a :class:`~adir_exp.samplers.Sampler`
(eq. 17 guidance). With Stable Diffusion the paper instead runs the (LoRA-adapted) UNet through the stock
pipeline: :class:`SDUpscaling` (``upscale``, y is the low-res input) and :class:`SDEditing` (``edit``, the
task's prompt repaints the region the operator drops). Both expose ``Sampler.sample``'s signature, so
:func:`~adir_exp.reconstruction.restore`, the adaptation callback and the benchmark methods use them unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionInpaintPipeline, StableDiffusionUpscalePipeline
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from adir_exp.adaptation.data import AdaptationImageError
from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.adaptation.pipeline import AdaptationSet, collect_images, pil_to_tensor
from adir_exp.data.images import to_image_range, to_model_range
from adir_exp.models.stable_diffusion import edit, upscale
from adir_exp.operators import BicubicDownsample, Inpainting, LinearOperator
from adir_exp.reconstruction import Degradation
from adir_exp.samplers import Measurement

UPSCALER_FACTOR = 4


def is_latent_diffusion(model: DictConfig) -> bool:
    """SD model configs name a diffusers ``pipeline`` where pixel-space ones name a ``denoiser``."""
    return "pipeline" in model


def load_pipeline(model: DictConfig, device: torch.device) -> DiffusionPipeline:
    """The model's pipeline on the run's device (where y, the generator and the adaptation live)."""
    return instantiate(model.pipeline, device=str(device))


def task_prompt(task: DictConfig) -> str:
    """The edit prompt (``task=edit``); tasks without one (plain inpainting) repaint unprompted."""
    return OmegaConf.select(task, "prompt", default=None) or ""


class SDUpscaling:
    """x̂ = the x4 upscaler's output for y, without measurement guidance (the paper's SD inference)."""

    def __init__(
        self,
        pipeline: StableDiffusionUpscalePipeline,
        num_inference_steps: int = 75,
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


def _check_operator(pipeline: DiffusionPipeline, operator: LinearOperator) -> None:
    """Each pipeline solves one kind of problem; say which task fits rather than fail inside diffusers."""
    if isinstance(pipeline, StableDiffusionUpscalePipeline):
        if not (isinstance(operator, BicubicDownsample) and operator.factor == UPSCALER_FACTOR):
            name = type(operator).__name__
            raise ValueError(f"the SD x4 upscaler needs a ×4 super-resolution task (task=sr4), got {name}")
    elif isinstance(pipeline, StableDiffusionInpaintPipeline):
        if not isinstance(operator, Inpainting):
            name = type(operator).__name__
            raise ValueError(f"SD inpainting needs a masking task (task=edit or task=inpainting), got {name}")
    else:
        raise TypeError(f"no ADIR-SD reconstruction for {type(pipeline).__name__}; use model=sd_x4 or sd_inpaint")


def sd_reconstruction(
    pipeline: DiffusionPipeline, inference: DictConfig, task: DictConfig, operator: LinearOperator
) -> SDUpscaling | SDEditing:
    """The pipeline's reconstruction with the model's ``inference`` settings (and, for editing, the task's prompt)."""
    _check_operator(pipeline, operator)
    settings: dict[str, Any] = OmegaConf.to_container(inference, resolve=True)
    if isinstance(pipeline, StableDiffusionUpscalePipeline):
        return SDUpscaling(pipeline, **settings)
    negative = OmegaConf.select(task, "negative_prompt", default=None)
    return SDEditing(pipeline, task_prompt(task), negative_prompt=negative, **settings)


def sd_objective(
    pipeline: DiffusionPipeline, objective: DictConfig, task: DictConfig, operator: LinearOperator
) -> AdaptationObjective:
    """The model's adaptation loss (a ``_partial_`` config) bound to the pipeline and to what the task conditions on:
    the degradation for the upscaler, the prompt for inpainting."""
    _check_operator(pipeline, operator)
    make = instantiate(objective)
    if isinstance(pipeline, StableDiffusionUpscalePipeline):
        return make(pipeline=pipeline, operator=operator)
    return make(pipeline=pipeline, prompt=task_prompt(task))


def collect_task_images(
    mode: str, degradation: Degradation, retriever: Any, paths: list[str] | None, task: DictConfig, seed: int = 0
) -> AdaptationSet:
    """As :func:`~adir_exp.adaptation.pipeline.collect_images`, except that an editing task retrieves the K nearest
    neighbours of its text (``task.retrieval_query``): y has a hole exactly where the edit goes."""
    query = OmegaConf.select(task, "retrieval_query", default=None)
    if query is None or paths or mode != "knn":
        return collect_images(mode, degradation, retriever, paths, seed)
    neighbours = retriever.query_text(query)
    if not neighbours:
        raise AdaptationImageError(
            "adaptation=knn found no images for the text query: select retrieval=knn retrieval/encoder=open_clip "
            "(with a built index) or give adaptation.images=[...]"
        )
    images = [pil_to_tensor(image) for image in retriever.load_images(neighbours)]
    return AdaptationSet(images, [n.id for n in neighbours], expected=retriever.k)
