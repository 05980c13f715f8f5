"""Retrieve → adapt → reconstruct for one measurement: what ``adir-run`` does when adaptation is on."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from adir_exp.adaptation.artifacts import AdapterCheckpoint
from adir_exp.adaptation.callback import ReconstructionCallback
from adir_exp.adaptation.data import AdaptationDataModule, AdaptationImageError
from adir_exp.adaptation.module import LoRAAdaptation
from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.data.images import load_image, to_image_range
from adir_exp.metrics import MetricSuite
from adir_exp.reconstruction import Degradation, Reconstruction
from adir_exp.samplers import Sampler

SELF_IMAGE_ID = "A+y"


@dataclass
class AdaptationSet:
    """The images adaptation fits, (1, 3, H, W) in [0, 1], their ids (for the adapter's metadata), and how many
    were meant to be there (K for retrieval) so that a shortfall is reported."""

    images: list[torch.Tensor]
    ids: list[str]
    expected: int | None = None


def collect_images(
    mode: str, degradation: Degradation, retriever: Any, paths: Sequence[str] | None, seed: int = 0
) -> AdaptationSet:
    """Given ``paths`` win; otherwise ``knn`` asks ``retriever`` for the K neighbours of y (with the leakage guard
    against the ground truth), ``random`` for K collection images drawn with ``seed`` (the control: same cost,
    unrelated images), and ``self`` uses y itself in image space (A⁺y; blur: y)."""
    if paths:
        return AdaptationSet([load_image(p) for p in paths], [str(p) for p in paths])
    if mode == "self":
        view = to_image_range(degradation.operator.y_as_image(degradation.y)).clamp(0, 1).cpu()
        return AdaptationSet([view], [SELF_IMAGE_ID], expected=1)
    if mode not in ("knn", "random"):
        raise ValueError(f"unknown adaptation mode {mode!r}; use none, knn, random or self")
    y = to_image_range(degradation.y).cpu()
    if mode == "random":
        neighbours = retriever.query_random(y, seed=seed, ground_truth=degradation.ground_truth)
    else:
        neighbours = retriever.query_image(y, ground_truth=degradation.ground_truth)
    if not neighbours:
        raise AdaptationImageError(
            f"adaptation={mode} found no images: select retrieval=knn (with a built index) or give adaptation.images=[...]"
        )
    images = [pil_to_tensor(image) for image in retriever.load_images(neighbours)]
    return AdaptationSet(images, [n.id for n in neighbours], expected=retriever.k)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image → (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def trainer_placement(device: torch.device) -> dict[str, Any]:
    """Train where the run samples: one device, the run's (``accelerator="auto"`` alone would take every GPU)."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}


def adapt(
    settings: DictConfig,
    objective: AdaptationObjective,
    adaptation_set: AdaptationSet,
    degradation: Degradation,
    sampler: Sampler,
    metrics: MetricSuite,
    logger: Logger | None,
    output_dir: Path,
    base_model: str,
    task: str,
) -> Reconstruction:
    """Fit LoRA on ``adaptation_set`` as ``settings`` (the ``adaptation`` config node) says, save the adapter,
    and return the final reconstruction (written to ``output_dir`` by :class:`ReconstructionCallback`)."""
    lora = OmegaConf.to_container(settings.lora, resolve=True)
    module = LoRAAdaptation(
        objective, **lora, lr=settings.lr, seed=settings.seed, gradient_checkpointing=settings.gradient_checkpointing
    )
    data = AdaptationDataModule(
        adaptation_set.images,
        crop_size=settings.crop_size,
        batch_size=settings.batch_size,
        iterations=settings.iterations,
        seed=settings.seed,
        expected=adaptation_set.expected,
        small_images=settings.small_images,
        names=adaptation_set.ids,
        short_side=settings.get("short_side"),
    )
    callbacks = []
    if settings.save:
        path = output_dir / settings.save
        callbacks.append(AdapterCheckpoint(path, base_model, task, adaptation_set.ids, settings.seed))
    every_n_steps = settings.reconstruct_every_n_steps
    reconstruction = ReconstructionCallback(
        degradation, sampler, metrics, output_dir, every_n_steps=every_n_steps, merge=settings.merge
    )
    trainer = Trainer(
        max_steps=settings.iterations,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,
        callbacks=[*callbacks, reconstruction],
        log_every_n_steps=min(settings.log_every_n_steps, settings.iterations),
        enable_progress_bar=settings.progress,
        enable_model_summary=False,
        **trainer_placement(degradation.device),
    )
    with warnings.catch_warnings():  # the objective's frozen parts (LPIPS, VAE) are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        trainer.fit(module, datamodule=data)
    if reconstruction.result is None:
        raise RuntimeError("adaptation stopped before its final reconstruction (interrupted?)")
    return reconstruction.result
