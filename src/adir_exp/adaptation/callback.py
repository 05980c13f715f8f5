"""The sampler callback: reconstruct y with the network while it adapts, what the adaptation is for."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from lightning import Callback, LightningModule, Trainer

if TYPE_CHECKING:
    from adir_exp.problem import Problem
    from adir_exp.samplers import Reconstructor


class ReconstructionCallback(Callback):
    """Reconstructs ``problem`` with ``reconstructor`` at the end of fit and after each step in ``at``.

    ``reconstructor`` must use the network the :class:`~adir_exp.adaptation.module.LoRAAdaptation` trains (the
    adapted prior's). Every reconstruction starts from the problem's sampling generator, so the final one does
    not depend on how many intermediate ones ran. The final estimate (model range) is kept in :attr:`result`,
    intermediate ones in :attr:`snapshots` by global step.
    """

    def __init__(self, reconstructor: Reconstructor, problem: Problem, at: Iterable[int] = ()) -> None:
        self.reconstructor = reconstructor
        self.problem = problem
        self.at = set(at)
        self.result: torch.Tensor | None = None
        self.snapshots: dict[int, torch.Tensor] = {}

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step in self.at and step < trainer.max_steps:
            self.snapshots[step] = self.reconstruct(pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.result = self.reconstruct(pl_module)

    def reconstruct(self, pl_module: LightningModule) -> torch.Tensor:
        training = pl_module.training
        pl_module.eval()
        problem = self.problem
        with torch.no_grad():
            estimate = self.reconstructor.sample(
                problem.image_shape, problem.measurement, generator=problem.generator(), device=problem.device
            )
        pl_module.train(training)
        return estimate
