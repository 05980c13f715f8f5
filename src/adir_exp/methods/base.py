"""What a row of a results table is: a method that reconstructs a measured image, given the run's prior."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from adir_exp.data.images import to_image_range

if TYPE_CHECKING:
    from adir_exp.adaptation.fit import FitResult
    from adir_exp.adaptation.sources import AdaptationSet
    from adir_exp.operators import Physics
    from adir_exp.priors.base import Prior
    from adir_exp.problem import Problem
    from adir_exp.retrieval.query import Retriever


@dataclass
class Estimate:
    """A method's reconstruction ([0, 1], CPU) and what else it produced.

    ``adaptation_images``: ids of the images it adapted on (retrieved neighbours, ``A+y``); ``adapter``: the adapted
    network and its LoRA settings, to save; ``losses``: adaptation loss terms per step; ``snapshots``:
    reconstructions during adaptation by step; ``details``: what else the row records about this reconstruction
    (e.g. the adapter bank's digest and the neighbourhood it picked), written under the row's ``details``.
    """

    image: torch.Tensor
    adaptation_images: list[str] = field(default_factory=list)
    adapter: tuple[torch.nn.Module, dict[str, Any]] | None = None
    losses: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def fitted_estimate(result: FitResult, images: AdaptationSet, network: torch.nn.Module,
                    details: dict[str, Any] | None = None) -> Estimate:
    """The estimate of an adapting method: the fit's reconstruction, what it adapted on, the adapter, the losses."""
    return Estimate(
        to_image_range(result.estimate).cpu(),
        adaptation_images=images.ids,
        adapter=(network, result.lora),
        losses=result.losses,
        snapshots={step: to_image_range(x).cpu() for step, x in result.snapshots.items()},
        details=details or {},
    )


class Method(ABC):
    """Reconstructs x from a :class:`~adir_exp.problem.Problem`. ``uses_prior``/``needs_retriever`` let the command
    build only what the selected methods need, and refuse a method whose retriever is missing before any work."""

    uses_prior = True
    needs_retriever = False

    @abstractmethod
    def reconstruct(self, problem: Problem, prior: Prior | None, retriever: Retriever | None = None) -> Estimate: ...

    def check(self, prior: Prior | None, physics: Physics, retriever: Retriever | None = None) -> None:
        """Raise if this method cannot run with ``prior`` on ``physics`` (and the run's ``retriever``, for methods
        that need one), called before any image."""

    @property
    def provenance(self) -> dict[str, str]:
        """Digests of what the method reads besides its settings (a file's content, where the settings only name
        its path): part of its rows' key, so rows made with other content are never reused."""
        return {}
