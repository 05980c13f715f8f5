"""Reconstruct y with the model while it adapts: what the adaptation is for, watched as it happens."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import Callback, LightningModule, Trainer

from adir_exp.adaptation.lora import merge_lora
from adir_exp.data.images import save_image
from adir_exp.metrics import MetricSuite
from adir_exp.reconstruction import Degradation, Reconstruction, restore
from adir_exp.samplers import Sampler


class ReconstructionCallback(Callback):
    """Runs the guided reconstruction of ``degradation`` with the adapted network at the end of fit and, with
    ``every_n_steps``, during it.

    ``sampler`` must hold the same denoiser the :class:`~adir_exp.adaptation.module.LoRAAdaptation` trains.
    Every reconstruction starts from the degradation's generator state, so the final one does not depend on how
    many intermediate ones ran. Intermediate estimates go to ``<output_dir>/adaptation/step_NNNNNN.png``; the
    final reconstruction writes the run's images (grid, reconstruction, …) to ``output_dir`` and is kept in
    :attr:`result`. Metrics (and the grid, where the logger takes images) go to ``trainer.logger`` at the
    global step. ``merge`` folds the adapters into the base weights before the final reconstruction (faster
    sampling; save the adapter before, e.g. with :class:`~adir_exp.adaptation.artifacts.AdapterCheckpoint`
    listed earlier).
    """

    def __init__(
        self,
        degradation: Degradation,
        sampler: Sampler,
        metrics: MetricSuite,
        output_dir: str | Path,
        every_n_steps: int | None = None,
        merge: bool = False,
    ) -> None:
        self.degradation = degradation
        self.sampler = sampler
        self.metrics = metrics
        self.output_dir = Path(output_dir)
        self.every_n_steps = every_n_steps
        self.merge = merge
        self.result: Reconstruction | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or step >= trainer.max_steps:
            return
        result = self.reconstruct(pl_module)
        path = save_image(result.estimate, self.output_dir / "adaptation" / f"step_{step:06d}.png")
        if trainer.logger is not None:
            result.log(trainer.logger, path, step=step, key="reconstruction")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.merge:
            merge_lora(pl_module.objective.network)
        self.result = self.reconstruct(pl_module)
        files = self.result.save(self.output_dir)
        if trainer.logger is not None:
            self.result.log(trainer.logger, files["grid"], step=trainer.global_step)

    def reconstruct(self, pl_module: LightningModule) -> Reconstruction:
        training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            result = restore(self.degradation, self.sampler, self.metrics)
        pl_module.train(training)
        return result
