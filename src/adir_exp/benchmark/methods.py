"""Reconstruction methods a benchmark compares; each maps (y, A) to an estimate in the model range [−1, 1]."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from adir_exp.benchmark.dataset import image_seed
from adir_exp.data.images import to_model_range
from adir_exp.diffusion import NoiseSchedule
from adir_exp.metrics import MetricSuite
from adir_exp.models.denoiser import Denoiser
from adir_exp.operators import BicubicDownsample, LinearOperator
from adir_exp.samplers import Measurement, Sampler


@dataclass
class MethodContext:
    """What a method may use besides y and A: the prior, the device, and the image being reconstructed.

    ``ground_truth`` ([0, 1]) is there only for the retrieval leakage guard (excluding the test image from its
    own neighbours); methods must not otherwise look at it.
    """

    denoiser: Denoiser
    schedule: NoiseSchedule
    device: torch.device
    image_id: str
    ground_truth: torch.Tensor
    work_dir: Path
    extras: dict = field(default_factory=dict)


class Method(ABC):
    @abstractmethod
    def __call__(
        self, y: torch.Tensor, operator: LinearOperator, context: MethodContext, generator: torch.Generator
    ) -> torch.Tensor: ...


class PseudoInverse(Method):
    """A⁺ y (for deblurring a damped least-squares solution, see ``LinearOperator.A_pinv``)."""

    def __call__(self, y, operator, context, generator):
        return operator.A_pinv(y).clamp(-1, 1)


class MeasurementAsImage(Method):
    """The no-prior baseline of tasks without a bicubic one: y in image space (deblurring: the blurred input)."""

    def __call__(self, y, operator, context, generator):
        return operator.y_as_image(y).clamp(-1, 1)


class BicubicUpsampling(Method):
    """The classic SR baseline: bicubic interpolation of y back to the image size."""

    def __call__(self, y, operator, context, generator):
        if not isinstance(operator, BicubicDownsample):
            raise ValueError("the bicubic baseline applies to super-resolution tasks only; use pseudo_inverse")
        return operator.upsample(y).clamp(-1, 1)


class SamplerReconstruction(Method):
    """Sampling with the prior as it is (GD rows with ADIR guidance; DPS rows with the DPS sampler)."""

    def __init__(self, sampler: Callable[..., Sampler]):
        self.make_sampler = sampler

    def __call__(self, y, operator, context, generator):
        sampler = self.make_sampler(denoiser=context.denoiser, schedule=context.schedule)
        shape = operator.image_shape(y.shape)
        return sampler.sample(shape, Measurement(y, operator), generator=generator, device=context.device)


class ADIRReconstruction(Method):
    """ADIR rows: adapt a fresh copy of the prior with LoRA (on retrieved neighbours, or on y), then guide.

    ``settings`` is an ``adaptation`` config node (conf/adaptation/knn.yaml); ``retrieval`` the ``retrieval``
    node, built once on first use. The base prior is deep-copied per image, so adapters never leak from one
    image into the next. The retriever gets the ground truth only for its leakage guard.
    """

    def __init__(self, mode: str, settings, sampler: Callable[..., Sampler] | DictConfig, retrieval=None):
        self.mode = mode
        self.settings = settings
        self.sampler = sampler
        self.retrieval = retrieval
        self._retriever = None

    def retriever(self):
        if self.mode in ("knn", "random") and self._retriever is None:
            if self.retrieval is None or "_target_" not in self.retrieval:
                raise ValueError(f"the adir_{self.mode} method needs retrieval=knn with a built index")
            self._retriever = instantiate(self.retrieval)
        return self._retriever

    def __call__(self, y, operator, context, generator):
        from adir_exp.adaptation.pipeline import adapt, collect_images
        from adir_exp.reconstruction import Degradation

        denoiser = copy.deepcopy(context.denoiser)
        sampler = instantiate(self.sampler)(denoiser=denoiser, schedule=context.schedule)
        degradation = Degradation(context.ground_truth, operator, y, generator.get_state(), context.device)
        seed = image_seed(self.settings.seed, context.image_id)  # random mode: its own draw per image
        images = collect_images(self.mode, degradation, self.retriever(), self.settings.images, seed)
        objective = instantiate(self.settings.objective)(denoiser=denoiser, schedule=context.schedule)
        settings = OmegaConf.merge(self.settings, {"save": None, "progress": False})
        work_dir = context.work_dir / f"adir_{self.mode}"
        result = adapt(settings, objective, images, degradation, sampler, MetricSuite({}), None, work_dir,
                       base_model="benchmark", task=type(operator).__name__)
        return to_model_range(result.estimate.to(context.device))
