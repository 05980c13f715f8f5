"""What every diffusion prior offers the rest of the framework, whatever its family (pixel-space ADM, latent SD).

A prior gives three things: its ``network`` (what LoRA adapts), its adaptation ``objective`` (the loss the
network was trained with, plus the paper's LPIPS term), and a ``reconstructor`` for a forward model (eq. 17
guided sampling for pixel priors, the stock pipeline for Stable Diffusion). Methods only talk to this interface;
family-specific checks live in the family's class. ``copy`` gives an independent network to adapt, so adapting
never changes the prior other methods use.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from adir_exp.adaptation.artifacts import load_adapter
from adir_exp.adaptation.lora import merge_lora
from adir_exp.adaptation.objective import AdaptationObjective
from adir_exp.operators import Physics
from adir_exp.samplers import Reconstructor, Sampler

SamplerFactory = Callable[..., Sampler]  # e.g. functools.partial(ADIRGuidedSampler, num_steps=100), given the model


class PriorConfigError(ValueError):
    """The prior cannot do what was asked of it (wrong task for the family, a sampler it does not take)."""


class Prior(ABC):
    """A pretrained diffusion model: ``name`` identifies it (adapters record it), ``image_size`` is its native
    resolution (the default adaptation crop). ``adapter`` applies a saved LoRA adapter (``merge_adapter`` folds it
    into the weights): the prior is then that adapted model for every method."""

    def __init__(self, name: str, image_size: int) -> None:
        self.name = name
        self.image_size = int(image_size)

    @property
    @abstractmethod
    def network(self) -> nn.Module:
        """The module LoRA is injected into."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def objective(self, physics: Physics) -> AdaptationObjective:
        """The adaptation loss of this network (built on demand: it may load LPIPS or encode a prompt)."""

    @abstractmethod
    def reconstructor(self, physics: Physics, sampler: SamplerFactory | None = None) -> Reconstructor:
        """How this prior reconstructs x from y = A x + e; ``sampler`` builds a sampler for pixel priors."""

    @abstractmethod
    def copy(self) -> Prior:
        """The same prior with its own copy of ``network`` (frozen parts may be shared)."""

    @abstractmethod
    def to(self, device: torch.device | str) -> Prior: ...

    def apply_adapter(self, path: str | Path | None, merge: bool = False) -> None:
        """Load a saved adapter (fitted on this prior, checked by name) into the network."""
        if path is None:
            return
        load_adapter(self.network, path, base_model=self.name)
        if merge:
            merge_lora(self.network)

    def fingerprint(self) -> str:
        """A digest of the name and the network's weights as they are now, so results of different weights never
        mix (reads every weight: call it once per run)."""
        digest = hashlib.sha256(self.name.encode())
        for key, tensor in sorted(self.network.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]
