"""Every diffusion row of the tables is one method: reconstruct with the prior, after adapting a copy of it or not.

GD (guided sampling, no adaptation), DPS, DDRM, Stable Diffusion as it is, and every ADIR variant differ only in
the reconstructor (``sampler``; None for priors with their own, like SD's pipelines) and the adaptation image
``source`` (None: no adaptation). Adapting always happens on a copy of the prior, so no adapter leaks into the
next image or into another method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adir_exp.adaptation.fit import LoRAFit
from adir_exp.adaptation.sources import AdaptationSource
from adir_exp.data.images import to_image_range
from adir_exp.methods.base import Estimate, Method, fitted_estimate
from adir_exp.priors.base import SamplerFactory

if TYPE_CHECKING:
    from adir_exp.operators import Physics
    from adir_exp.priors.base import Prior
    from adir_exp.problem import Problem
    from adir_exp.retrieval.query import Retriever


class DiffusionReconstruction(Method):
    """Reconstruct with ``prior.reconstructor(physics, sampler)``; with a ``source``, first fit ``adaptation``
    (LoRA settings) on the images it collects."""

    def __init__(
        self,
        sampler: SamplerFactory | None = None,
        source: AdaptationSource | None = None,
        adaptation: LoRAFit | None = None,
    ) -> None:
        if source is not None and adaptation is None:
            raise ValueError(f"adapting on {source!r} needs LoRA settings (the adaptation group), got none")
        self.sampler = sampler or None  # an empty config node (sampler=none) means the prior's own
        self.source = source
        self.adaptation = adaptation if source is not None else None

    @property
    def needs_retriever(self) -> bool:
        return self.source is not None and self.source.needs_retriever

    def check(self, prior: Prior | None, physics: Physics, retriever: Retriever | None = None) -> None:
        prior.reconstructor(physics, self.sampler)  # the prior refuses a sampler or task it cannot take
        if self.source is not None:
            prior.objective(physics)  # its weights (LPIPS) are there before the first image is touched

    def reconstruct(self, problem: Problem, prior: Prior | None, retriever: Retriever | None = None) -> Estimate:
        if self.source is None:
            reconstructor = prior.reconstructor(problem.physics, self.sampler)
            x = reconstructor.sample(
                problem.image_shape, problem.measurement, generator=problem.generator(), device=problem.device
            )
            return Estimate(to_image_range(x).cpu())
        images = self.source.collect(problem, retriever)
        adapted = prior.copy()
        result = self.adaptation(adapted, images, problem, adapted.reconstructor(problem.physics, self.sampler))
        return fitted_estimate(result, images, adapted.network)
