"""Test-time adaptation as a Lightning module: LoRA on the objective's network, Adam on the adapters only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningModule

from adir_exp.adaptation.lora import add_lora, lora_parameters
from adir_exp.adaptation.objective import AdaptationObjective


class LoRAAdaptation(LightningModule):
    """Fits LoRA adapters of ``objective.network`` to batches of image crops in [−1, 1].

    Works with any :class:`AdaptationObjective` (pixel-space GD, latent SD). Everything the objective holds
    except the adapters is frozen, so the base weights stay bitwise unchanged and can be shared with a sampler.
    The adapters' initialisation, and the timesteps and noise of the loss (from a generator seeded at the start
    of fit), all come from ``seed``, which makes a run repeatable whatever used the global RNG before it.

    ``gradient_checkpointing`` (diffusers networks) recomputes each block's activations during backward. LoRA
    saves no weight gradients or Adam state for the base, but it keeps the activations of back-propagation,
    which dominate memory at ADIR's batch of 6. Checkpointing drops most of them, at the cost of about one
    more forward per step (docs/adaptation.md has measurements).
    """

    def __init__(
        self,
        objective: AdaptationObjective,
        rank: int = 16,
        alpha: float = 8.0,
        targets: str | Sequence[str] = "conv2d",
        dropout: float = 0.0,
        lr: float = 1e-4,
        seed: int = 0,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.objective = objective
        self.objective.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):  # peft draws lora_A's initial values from the global RNG
            torch.manual_seed(seed)
            self.adapted_modules = add_lora(objective.network, rank=rank, alpha=alpha, targets=targets, dropout=dropout)
        if gradient_checkpointing:
            objective.network.enable_gradient_checkpointing()
        self.lr = lr
        self.seed = seed
        self.generator: torch.Generator | None = None
        self.history: list[dict[str, float]] = []

    @property
    def lora_config(self) -> dict[str, Any]:
        """What :func:`~adir_exp.adaptation.lora.add_lora` needs to rebuild the same adapters (targets resolved)."""
        hp = self.hparams
        return {"rank": hp.rank, "alpha": hp.alpha, "dropout": hp.dropout, "targets": list(self.adapted_modules)}

    def on_fit_start(self) -> None:
        self.objective.train()  # LoRA dropout acts in train mode; objectives keep their frozen parts in eval
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        terms = self.objective.loss(batch, generator=self.generator)
        self.history.append({name: float(value.detach()) for name, value in terms.items()})
        self.log_dict(
            {f"adaptation/{name}": value.detach() for name, value in terms.items()},
            prog_bar=True,
            batch_size=batch.shape[0],
        )
        return terms["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(lora_parameters(self.objective.network), lr=self.lr)
