"""What adaptation minimises: one interface, implemented per model family (pixel-space GD, latent SD)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

if TYPE_CHECKING:
    from adir_exp.operators import Physics


class AdaptationObjective(nn.Module, ABC):
    """Loss of one batch of image crops (B, 3, h, w) in [−1, 1] for test-time adaptation.

    ``network`` is the module LoRA is injected into (a diffusers UNet); everything else the objective holds
    (schedule, VAE, text encoder, LPIPS) stays frozen.
    """

    @property
    @abstractmethod
    def network(self) -> nn.Module: ...

    @abstractmethod
    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Return {"loss": total, ...named components} for the batch."""


class Adaptable(Protocol):
    """What adaptation asks of a prior (:class:`~adir_exp.priors.Prior` is one): the loss of its network for a
    forward model, and its native resolution (the default crop). A protocol, so adaptation needs no prior class."""

    image_size: int

    def objective(self, physics: Physics) -> AdaptationObjective: ...


def lpips_network(net: str = "alex") -> nn.Module:
    """The frozen reference LPIPS v0.1 network (ImageNet backbone + linear layers), for the paper's 0.1·LPIPS term.

    Built through the metric, so a missing backbone file raises :class:`~adir_exp.weights.MissingWeightsError`
    naming it (``adir-weights provision`` supplies it). Inputs in [−1, 1]."""
    from adir_exp.metrics import LPIPS

    return LPIPS(net=net).model.requires_grad_(False).eval()
