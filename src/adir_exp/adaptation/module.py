"""Test-time adaptation as a Lightning module: LoRA on the objective's network, Adam on the adapters only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule

from adir_exp.adaptation.artifacts import load_adapter
from adir_exp.adaptation.lora import add_lora, lora_parameters
from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.models.execution import (
    Precision,
    check_precision,
    precision_context,
    prepare_network,
    tf32_math,
)


class LoRAAdaptation(LightningModule):
    """Fits LoRA adapters of ``objective.network`` to batches of image crops in [−1, 1].

    Works with any :class:`AdaptationObjective` (pixel-space GD, latent SD). Everything the objective holds
    except the adapters is frozen, so the base weights stay bitwise unchanged and can be shared with a sampler.
    The adapters' initialisation, and the timesteps and noise of the loss (from a generator seeded at the start
    of fit), all come from ``seed``, which makes a run repeatable whatever used the global RNG before it.
    ``initial`` starts from a saved adapter (its rank, alpha and layers, which the LoRA settings here then do not
    change) instead of a fresh LoRA.

    ``gradient_checkpointing`` (diffusers networks) recomputes each block's activations during backward. LoRA
    saves no weight gradients or Adam state for the base, but it keeps the activations of back-propagation,
    which dominate memory at ADIR's batch of 6. Checkpointing drops most of them, at the cost of about one
    more forward per step (docs/adaptation.md has measurements).

    Speed options (README "Performance" and docs/performance.md have measurements):

    * ``fused``: see :func:`~adir_exp.adaptation.lora.add_lora`; ``None`` fuses whenever that is exact.
    * ``precision``: ``"fp32"`` (TF32 off), ``"tf32"`` (TF32 for CUDA matmuls and convolutions, forward and
      backward) or ``"bf16"``: ``objective.loss`` runs under bf16 autocast, so the network's convolutions and
      matmuls run in bf16 while the adapters, their gradients and Adam's state stay fp32; the objective keeps its
      loss arithmetic in fp32 (:class:`~adir_exp.adaptation.GDObjective` casts ε to fp32 and runs LPIPS outside
      autocast). See :mod:`adir_exp.models.execution`.
    * ``channels_last`` / ``compile``: the adapted network in NHWC layout / compiled in place with
      ``nn.Module.compile`` (``True`` or a ``torch.compile`` mode name); both keep peft's state-dict keys.
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
        fused: bool | None = None,
        precision: Precision = "fp32",
        channels_last: bool = False,
        compile: bool | str = False,
        initial: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["objective"])
        self.objective = objective
        self.objective.requires_grad_(False)
        network = objective.network
        with torch.random.fork_rng(devices=[]):  # peft draws lora_A's initial values from the global RNG
            torch.manual_seed(seed)
            if initial is None:
                self.adapted_modules = add_lora(network, rank=rank, alpha=alpha, targets=targets, dropout=dropout,
                                                fused=fused)
                self.shape = {"rank": rank, "alpha": alpha, "dropout": dropout}
            else:  # the saved adapter's own shape and weights; the fit goes on from there
                saved = load_adapter(network, initial, fused=fused).lora
                self.adapted_modules = list(saved["targets"])
                self.shape = {key: saved[key] for key in ("rank", "alpha", "dropout")}
        if gradient_checkpointing:
            network.enable_gradient_checkpointing()
        prepare_network(network, channels_last=channels_last, compile=compile)
        self.precision = check_precision(precision)
        self.lr = lr
        self.seed = seed
        self.generator: torch.Generator | None = None
        self.history: list[dict[str, float]] = []

    @property
    def lora_config(self) -> dict[str, Any]:
        """What :func:`~adir_exp.adaptation.lora.add_lora` needs to rebuild the same adapters (targets resolved)."""
        return {**self.shape, "targets": list(self.adapted_modules)}

    def on_fit_start(self) -> None:
        self.objective.train()  # LoRA dropout acts in train mode; objectives keep their frozen parts in eval
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        with precision_context(self.precision, batch.device):
            terms = self.objective.loss(batch, generator=self.generator)
        self.history.append({name: float(value.detach()) for name, value in terms.items()})
        self.log_dict(
            {f"adaptation/{name}": value.detach() for name, value in terms.items()},
            prog_bar=True,
            batch_size=batch.shape[0],
        )
        return terms["loss"]

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward at the forward's matmul precision (autocast needs nothing here: it recorded its casts)."""
        with tf32_math(self.precision == "tf32"):
            super().backward(loss, *args, **kwargs)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(lora_parameters(self.objective.network), lr=self.lr)
