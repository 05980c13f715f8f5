"""The paper's test-time adaptation (Sec. 3.3, Table 1): LoRA on the prior's network, fitted to adaptation images.

:class:`LoRAFit` holds the settings (``adaptation`` config group) and runs one adaptation as a Lightning fit:
the :class:`~adir_exp.adaptation.module.LoRAAdaptation` module trains, the
:class:`~adir_exp.adaptation.callback.ReconstructionCallback` reconstructs with the adapted network when the
fit ends, and the result comes back to the caller: the reconstruction, the adapter's configuration, the loss
per step.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from tqdm.auto import tqdm

from adir_exp.adaptation.callback import ReconstructionCallback
from adir_exp.adaptation.crops import AdaptationDataModule
from adir_exp.adaptation.module import LoRAAdaptation

if TYPE_CHECKING:
    from adir_exp.adaptation.objective import Adaptable
    from adir_exp.adaptation.sources import AdaptationSet
    from adir_exp.operators import Physics
    from adir_exp.problem import Problem
    from adir_exp.samplers import Reconstructor


@dataclass
class FitResult:
    """``estimate``: the reconstruction with the adapted network (model range, on the problem's device);
    ``lora``: the keyword arguments of :func:`~adir_exp.adaptation.lora.add_lora` that rebuild the adapter
    (targets resolved); ``losses``: the loss terms of every step; ``snapshots``: intermediate reconstructions."""

    estimate: torch.Tensor
    lora: dict[str, Any]
    losses: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass
class AdapterFit:
    """A fit without a reconstruction: ``lora`` (as in :class:`FitResult`) and the loss terms of every step; the
    adapter itself is the adapted network's."""

    lora: dict[str, Any]
    losses: list[dict[str, float]] = field(default_factory=list)


class AdaptationProgress(Callback):
    """One bar for the adaptation steps, below the command's own bar (Lightning's bar would add epochs and a
    metrics table for what is a single run of steps)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bar = tqdm(total=trainer.max_steps, desc="adapting (LoRA)", unit="step", position=1, leave=False,
                        dynamic_ncols=True)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self.bar.set_postfix(loss=f"{pl_module.history[-1]['loss']:.4f}", refresh=False)
        self.bar.update()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bar.close()


TrainerFactory = Callable[..., Trainer]  # the `trainer` group: a partial that each fit completes
# What a fit's Trainer is without the `trainer` group (conf/trainer/default.yaml holds the same): no checkpoints (the
# runner saves the adapter), no Lightning bar or model summary (the command shows its own bars), and every step
# logged when a logger is given (a fit's curve is its few hundred steps).
QUIET_TRAINER: TrainerFactory = partial(Trainer, enable_checkpointing=False, enable_progress_bar=False,
                                        enable_model_summary=False, log_every_n_steps=1)


def trainer_placement(device: torch.device) -> dict[str, Any]:
    """Train where the run samples: one device, the run's (``accelerator="auto"`` alone would take every GPU)."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}


class LoRAFit:
    """Adam on rank-``rank`` LoRA adapters (scale ``alpha``/``rank``) of every ``targets`` layer for ``iterations``
    steps of ``batch_size`` random ``crop_size`` crops (None: the prior's native size), learning rate ``lr``.

    Paper (Table 1): 400 iterations, lr 1e-4, batch 6, rank 16, alpha 8, all conv layers. ``short_side`` resizes
    every adaptation image first (to the test image's scale), ``small_images`` says what to do with images
    smaller than a crop (docs/adaptation.md). ``seed`` fixes the LoRA initialisation, the crops and the loss's
    timesteps and noise, whatever ran before. ``fused`` (None: whenever exact), ``precision``, ``channels_last``,
    ``compile`` and ``gradient_checkpointing`` trade speed and memory (docs/adaptation.md, README "Performance").
    ``reconstruct_at`` also reconstructs after those steps: since the fit is prefix-consistent (the first N steps
    are the same whatever ``iterations`` is), the reconstruction after step N is that of an N-iteration fit, so
    one fit gives a whole cost/benefit curve. ``trainer`` builds each fit's Lightning ``Trainer`` (the ``trainer``
    config group, a partial); the fit adds its steps, logger, callbacks and device.
    """

    def __init__(
        self,
        iterations: int = 400,
        batch_size: int = 6,
        lr: float = 1e-4,
        rank: int = 16,
        alpha: float = 8.0,
        targets: str | list[str] = "conv2d",
        dropout: float = 0.0,
        crop_size: int | None = None,
        small_images: Literal["upscale", "error"] = "upscale",
        short_side: int | None = None,
        seed: int = 0,
        gradient_checkpointing: bool = False,
        fused: bool | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool | str = False,
        reconstruct_at: list[int] | None = None,
        progress: bool = True,
        trainer: TrainerFactory | None = None,
    ) -> None:
        for name, value in (("iterations", iterations), ("batch_size", batch_size), ("rank", rank)):
            if int(value) < 1:
                raise ValueError(f"adaptation {name} must be at least 1, got {value}")
        if lr <= 0:
            raise ValueError(f"adaptation lr must be positive, got {lr}")
        self.iterations, self.batch_size, self.lr = int(iterations), int(batch_size), float(lr)
        self.lora = {"rank": int(rank), "alpha": float(alpha), "targets": targets, "dropout": float(dropout)}
        self.crop_size, self.small_images, self.short_side = crop_size, small_images, short_side
        self.seed = seed
        self.speed = {"gradient_checkpointing": gradient_checkpointing, "fused": fused, "precision": precision,
                      "channels_last": channels_last, "compile": compile}
        self.reconstruct_at = sorted(reconstruct_at or [])
        self.progress = progress
        self.trainer = trainer or QUIET_TRAINER

    def fit(
        self,
        prior: Adaptable,
        images: AdaptationSet,
        physics: Physics,
        device: torch.device,
        logger: Logger | None = None,
        callbacks: Sequence[Callback] = (),
        start_from: str | Path | None = None,
    ) -> AdapterFit:
        """Fit LoRA on ``prior``'s network in place (give it a copy) to ``images``, with or without a problem to
        reconstruct: every adaptation (ADIR's per image, the adapter bank's per neighbourhood) is this one fit.
        ``start_from``: a saved adapter whose LoRA shape and weights the fit starts from, instead of a fresh LoRA."""
        module = LoRAAdaptation(
            prior.objective(physics),
            **self.lora,
            lr=self.lr,
            seed=self.seed,
            initial=start_from,
            **self.speed,
        )
        data = AdaptationDataModule(
            images.images,
            crop_size=self.crop_size or prior.image_size,
            batch_size=self.batch_size,
            iterations=self.iterations,
            seed=self.seed,
            expected=images.expected,
            small_images=self.small_images,
            names=images.ids,
            short_side=self.short_side,
        )
        progress = [AdaptationProgress()] if self.progress else []
        trainer = self.trainer(
            max_steps=self.iterations,
            logger=logger if logger is not None else False,
            callbacks=[*progress, *callbacks],
            **trainer_placement(device),
        )
        with warnings.catch_warnings():  # the objective's frozen parts (LPIPS, VAE) are in eval mode on purpose
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            trainer.fit(module, datamodule=data)
        return AdapterFit(module.lora_config, module.history)

    def __call__(
        self,
        prior: Adaptable,
        images: AdaptationSet,
        problem: Problem,
        reconstructor: Reconstructor,
        logger: Logger | None = None,
        start_from: str | Path | None = None,
    ) -> FitResult:
        """Adapt ``prior``'s network in place (give it a copy) and reconstruct ``problem`` with ``reconstructor``,
        which must be built from the same prior."""
        callback = ReconstructionCallback(reconstructor, problem, at=self.reconstruct_at)
        fitted = self.fit(prior, images, problem.physics, problem.device, logger, [callback], start_from)
        if callback.result is None:
            raise RuntimeError("adaptation stopped before its final reconstruction (interrupted?)")
        return FitResult(callback.result, fitted.lora, fitted.losses, callback.snapshots)

    def settings(self) -> dict[str, Any]:
        """Everything that determines a fitted adapter (not the progress bar, not the intermediate reconstructions),
        for records that must tell fits of other settings apart (the adapter bank's manifest)."""
        return {"iterations": self.iterations, "batch_size": self.batch_size, "lr": self.lr, **self.lora,
                "crop_size": self.crop_size, "small_images": self.small_images, "short_side": self.short_side,
                "seed": self.seed, **self.speed}

    def with_iterations(self, iterations: int) -> LoRAFit:
        """The same settings for another number of steps (a short fine-tune from a saved adapter)."""
        if int(iterations) < 1:
            raise ValueError(f"adaptation iterations must be at least 1, got {iterations}")
        shorter = copy.copy(self)
        shorter.iterations = int(iterations)
        return shorter

    def __repr__(self) -> str:
        return f"LoRAFit(iterations={self.iterations}, batch_size={self.batch_size}, lr={self.lr}, {self.lora})"
