"""Stable Diffusion rows of a benchmark (paper Table 3 and Fig. 3): the stock pipeline, and ADIR-SD.

``adir-bench`` hands every method the model's prior as ``context.denoiser``; with ``model=sd_x4`` or
``model=sd_inpaint`` that is the diffusers pipeline (``cli/bench.py`` loads it from ``model.pipeline``). The
pipeline decides what a row computes: ×4 super-resolution of y (x4 upscaler) or the task's text-guided edit
(inpainting), both without eq. 17 guidance, as in the paper.
"""

from __future__ import annotations

import copy

from diffusers import DiffusionPipeline
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from adir_exp.adaptation.pipeline import adapt
from adir_exp.benchmark.methods import Method, MethodContext
from adir_exp.data.images import to_model_range
from adir_exp.metrics import MetricSuite
from adir_exp.reconstruction import Degradation
from adir_exp.reconstruction_sd import collect_task_images, sd_objective, sd_reconstruction
from adir_exp.samplers import Measurement


def context_pipeline(context: MethodContext) -> DiffusionPipeline:
    """The SD pipeline the runner was given, or a clear error when the benchmark runs a pixel-space model."""
    if not isinstance(context.denoiser, DiffusionPipeline):
        raise ValueError(
            f"SD methods need a Stable Diffusion model (model=sd_x4 or model=sd_inpaint), "
            f"got {type(context.denoiser).__name__}"
        )
    return context.denoiser


class SDReconstruction(Method):
    """The "SD" rows: the stock pipeline as it is (``model`` and ``task``: the run's config nodes)."""

    def __init__(self, model: DictConfig, task: DictConfig) -> None:
        self.model = model
        self.task = task

    def __call__(self, y, operator, context, generator):
        sampler = sd_reconstruction(context_pipeline(context), self.model.inference, self.task, operator)
        shape = operator.image_shape(y.shape)
        return sampler.sample(shape, Measurement(y, operator), generator=generator, device=context.device)


class ADIRSDReconstruction(Method):
    """ADIR-SD rows: LoRA on a fresh copy of the UNet, fitted to the K nearest neighbours (of y for SR, of the
    task's text for editing) or to y itself (``mode=self``), then the pipeline's reconstruction.

    ``settings`` is an ``adaptation`` config node (conf/adaptation/knn.yaml); the loss is ``model.objective``.
    The UNet is deep-copied per image so adapters never leak into the next image or into the stock "SD" row;
    the frozen VAE and text encoder are shared. The retriever (``retrieval`` node) is built once, on first use.
    """

    def __init__(
        self, mode: str, settings: DictConfig, model: DictConfig, task: DictConfig, retrieval: DictConfig | None = None
    ) -> None:
        self.mode = mode
        self.settings = settings
        self.model = model
        self.task = task
        self.retrieval = retrieval
        self._retriever = None

    def retriever(self):
        if self.mode == "knn" and not self.settings.images and self._retriever is None:
            if self.retrieval is None or "_target_" not in self.retrieval:
                raise ValueError("the adir_sd_knn method needs retrieval=knn with a built index (or adir.images=[...])")
            self._retriever = instantiate(self.retrieval)
        return self._retriever

    def __call__(self, y, operator, context, generator):
        pipeline = copy.copy(context_pipeline(context))
        pipeline.unet = copy.deepcopy(pipeline.unet)
        degradation = Degradation(context.ground_truth, operator, y, generator.get_state(), context.device)
        images = collect_task_images(self.mode, degradation, self.retriever(), self.settings.images, self.task)
        objective = sd_objective(pipeline, self.model.objective, self.task, operator)
        sampler = sd_reconstruction(pipeline, self.model.inference, self.task, operator)
        settings = OmegaConf.merge(self.settings, {"save": None, "progress": False})
        work_dir = context.work_dir / f"adir_sd_{self.mode}"
        result = adapt(settings, objective, images, degradation, sampler, MetricSuite({}), None, work_dir,
                       base_model=self.model.name, task=self.task.name)
        return to_model_range(result.estimate.to(context.device))
