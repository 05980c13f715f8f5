"""ADIR at GD's cost: reconstruct with an adapter of the bank (docs/bank.md) picked by retrieval, instead of
adapting on the K nearest images of every test image.

y is embedded exactly as ADIR-KNN embeds it for retrieval; the neighbourhood whose centroid is most similar
(cosine) gives the adapter, merged into the weights of a copy of the prior, so sampling costs what GD's does.
Options: ``blend`` the top-m adapters (their weight deltas weighted by a softmax of the cosines), fall back to
the plain prior (GD) when y is far from every centroid, or ``tune`` the picked adapter on y's own K nearest for a
few steps before reconstructing (``adir_bank_tuned``).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from adir_exp.adaptation.fit import LoRAFit
from adir_exp.adaptation.sources import NearestImages
from adir_exp.bank.store import AdapterBank
from adir_exp.data.images import to_image_range
from adir_exp.methods.base import Estimate, Method, fitted_estimate
from adir_exp.priors.base import SamplerFactory

if TYPE_CHECKING:
    from adir_exp.operators import Physics
    from adir_exp.priors.base import Prior
    from adir_exp.problem import Problem
    from adir_exp.retrieval.query import Retriever


class BankReconstruction(Method):
    """Reconstruct with ``prior.reconstructor(physics, sampler)`` after applying the bank's adapter for y.

    ``blend``: merge the m nearest adapters, weighted by softmax(cosine / ``temperature``); ``fallback_threshold``:
    below this cosine to the nearest centroid, reconstruct with the plain prior (GD; recorded per row);
    ``tune`` (LoRA settings, the ``adaptation`` group): fine-tune the picked adapter, unmerged, for
    ``tune_iterations`` steps on y's K nearest collection images (the retriever, leakage guard as for ADIR-KNN),
    then reconstruct; after a fallback the tune starts from a fresh LoRA. Merged adapters are cached per
    neighbourhood (the ``cache`` most recent), so consecutive images of one neighbourhood load it once.
    """

    needs_retriever = True

    def __init__(
        self,
        bank: str | Path,
        sampler: SamplerFactory | None = None,
        blend: int = 1,
        temperature: float = 0.05,
        fallback_threshold: float | None = None,
        tune: LoRAFit | None = None,
        tune_iterations: int = 20,
        cache: int = 4,
    ) -> None:
        self.bank = AdapterBank(bank)
        if not 1 <= int(blend) <= len(self.bank):
            raise ValueError(f"blend={blend}: the bank at {self.bank.directory} has {len(self.bank)} adapters")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if tune is not None and blend != 1:
            raise ValueError(f"tuning starts from one adapter: blend must be 1, got {blend}")
        self.sampler = sampler or None
        self.blend, self.temperature, self.fallback_threshold = int(blend), float(temperature), fallback_threshold
        self.tune = tune.with_iterations(tune_iterations) if tune is not None else None
        self.cache_size = max(int(cache), self.blend)
        self.merged: OrderedDict[int, Prior] = OrderedDict()
        self.merged_from: Prior | None = None  # the prior the cached copies were made from

    @property
    def provenance(self) -> dict[str, str]:
        return {"bank": self.bank.digest}

    def check(self, prior: Prior | None, physics: Physics, retriever: Retriever | None = None) -> None:
        prior.reconstructor(physics, self.sampler)
        if self.tune is not None:
            prior.objective(physics)
        self.bank.check(prior.fingerprint(), retriever.encoder.name, retriever.index.fingerprint())

    def reconstruct(self, problem: Problem, prior: Prior | None, retriever: Retriever | None = None) -> Estimate:
        y = to_image_range(problem.y).cpu()  # what NearestImages embeds
        picks = self.bank.nearest(retriever.embed_image(y), self.blend)
        weights = softmax(np.array([similarity for _, similarity in picks]) / self.temperature)
        fallback = self.fallback_threshold is not None and picks[0][1] < self.fallback_threshold
        details: dict[str, Any] = {
            "bank": self.bank.digest, "neighbourhoods": [self.bank.names[n] for n, _ in picks],
            "similarities": [similarity for _, similarity in picks], "weights": weights.tolist(), "fallback": fallback,
        }
        if self.tune is not None:
            return self.tuned(problem, prior, retriever, None if fallback else self.bank.adapter(picks[0][0]), details)
        adapted = prior if fallback else self.adapted(prior, [n for n, _ in picks], weights)
        x = adapted.reconstructor(problem.physics, self.sampler).sample(
            problem.image_shape, problem.measurement, generator=problem.generator(), device=problem.device
        )
        return Estimate(to_image_range(x).cpu(), details=details)

    def tuned(self, problem: Problem, prior: Prior, retriever: Retriever, adapter: Path | None,
              details: dict[str, Any]) -> Estimate:
        images = NearestImages().collect(problem, retriever)
        adapted = prior.copy()
        result = self.tune(adapted, images, problem, adapted.reconstructor(problem.physics, self.sampler),
                           start_from=adapter)
        return fitted_estimate(result, images, adapted.network, details)

    def adapted(self, prior: Prior, neighbourhoods: list[int], weights: np.ndarray) -> Prior:
        """The prior with the adapters merged in: W + Σ wᵢ·ΔWᵢ (one adapter: its cached merged copy itself)."""
        if len(neighbourhoods) == 1:
            return self.merged_copy(prior, neighbourhoods[0])
        blended = prior.copy()
        base, state = prior.network.state_dict(), blended.network.state_dict()
        with torch.no_grad():
            for n, weight in zip(neighbourhoods, weights.tolist(), strict=True):
                merged = self.merged_copy(prior, n).network.state_dict()
                for key, tensor in state.items():
                    if tensor.is_floating_point():
                        tensor.add_(merged[key] - base[key], alpha=weight)
        return blended

    def merged_copy(self, prior: Prior, neighbourhood: int) -> Prior:
        """A copy of ``prior`` with the neighbourhood's adapter merged into its weights, from the cache if there."""
        if self.merged_from is not prior:
            self.merged.clear()
            self.merged_from = prior
        if neighbourhood not in self.merged:
            copy = prior.copy()
            copy.apply_adapter(self.bank.adapter(neighbourhood), merge=True)
            self.merged[neighbourhood] = copy
            while len(self.merged) > self.cache_size:
                self.merged.popitem(last=False)
        self.merged.move_to_end(neighbourhood)
        return self.merged[neighbourhood]


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()
