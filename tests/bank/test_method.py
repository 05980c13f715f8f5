"""method=adir_bank: picks the neighbourhood nearest to y, reconstructs with its adapter merged and without any fit,
refuses a bank of another prior or index before any image; adir_bank_tuned fine-tunes the picked adapter."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from adir_exp.adaptation import LoRAFit
from adir_exp.bank import AdapterBank, BankError, build_bank
from adir_exp.data.images import to_image_range
from adir_exp.methods import BankReconstruction
from adir_exp.priors import PixelPrior
from adir_exp.retrieval.query import Retriever
from adir_exp.samplers import ADIRGuidedSampler
from tests.bank.conftest import index_of, write_collection

SAMPLER = partial(ADIRGuidedSampler, num_steps=3, progress=False)


@pytest.fixture
def bank_dir(tmp_path, retriever, tiny_prior, fit, physics):
    build_bank(tmp_path / "bank", retriever.index, retriever.encoder.name, tiny_prior, fit, physics, "sr4",
               torch.device("cpu"), 2, progress=False)
    return tmp_path / "bank"


def gd(prior, problem) -> torch.Tensor:
    x = prior.reconstructor(problem.physics, SAMPLER).sample(problem.image_shape, problem.measurement,
                                                             generator=problem.generator())
    return to_image_range(x).cpu()


def expected_pick(bank: AdapterBank, retriever: Retriever, problem) -> int:
    embedding = retriever.embed_image(to_image_range(problem.y).cpu())
    return int(np.argmax(bank.centroids @ embedding))


def test_the_nearest_neighbourhood_s_adapter_reconstructs_without_any_fit(bank_dir, retriever, tiny_prior,
                                                                           sr_problem, monkeypatch) -> None:
    def no_trainer(*args, **kwargs):
        raise AssertionError("adir_bank must not fit")

    monkeypatch.setattr("adir_exp.adaptation.fit.Trainer", no_trainer)
    method = BankReconstruction(bank_dir, SAMPLER)
    method.check(tiny_prior, sr_problem.physics, retriever)
    estimate = method.reconstruct(sr_problem, tiny_prior, retriever)
    bank = AdapterBank(bank_dir)
    picked = expected_pick(bank, retriever, sr_problem)
    merged = tiny_prior.copy()
    merged.apply_adapter(bank.adapter(picked), merge=True)
    assert torch.equal(estimate.image, gd(merged, sr_problem))
    assert not torch.equal(estimate.image, gd(tiny_prior, sr_problem))
    details = estimate.details
    assert details["bank"] == bank.digest and method.provenance == {"bank": bank.digest}
    assert details["neighbourhoods"] == [bank.names[picked]] and details["fallback"] is False
    assert details["similarities"][0] == pytest.approx(float(bank.centroids[picked] @ retriever.embed_image(
        to_image_range(sr_problem.y).cpu())), abs=1e-6)
    assert not estimate.adaptation_images and not estimate.losses


def test_consecutive_images_of_one_neighbourhood_load_its_adapter_once(bank_dir, retriever, tiny_prior, sr_problem,
                                                                     monkeypatch) -> None:
    loads = []
    apply = PixelPrior.apply_adapter
    monkeypatch.setattr(PixelPrior, "apply_adapter", lambda self, *a, **k: loads.append(a) or apply(self, *a, **k))
    method = BankReconstruction(bank_dir, SAMPLER)
    first, second = (method.reconstruct(sr_problem, tiny_prior, retriever) for _ in range(2))
    assert len(loads) == 1 and torch.equal(first.image, second.image)


def test_below_the_fallback_threshold_the_plain_prior_reconstructs(bank_dir, retriever, tiny_prior,
                                                                   sr_problem) -> None:
    estimate = BankReconstruction(bank_dir, SAMPLER, fallback_threshold=1.01).reconstruct(sr_problem, tiny_prior,
                                                                                          retriever)
    assert estimate.details["fallback"] is True and torch.equal(estimate.image, gd(tiny_prior, sr_problem))


def test_a_blend_with_all_weight_on_the_nearest_equals_its_adapter(bank_dir, retriever, tiny_prior,
                                                                   sr_problem) -> None:
    """W + Σ wᵢ·ΔWᵢ: at a vanishing temperature the softmax puts all weight on the nearest adapter."""
    single = BankReconstruction(bank_dir, SAMPLER).reconstruct(sr_problem, tiny_prior, retriever)
    sharp = BankReconstruction(bank_dir, SAMPLER, blend=2, temperature=1e-6).reconstruct(sr_problem, tiny_prior,
                                                                                         retriever)
    assert sharp.details["weights"] == [1.0, 0.0] and len(sharp.details["neighbourhoods"]) == 2
    torch.testing.assert_close(sharp.image, single.image, rtol=0, atol=1e-5)
    even = BankReconstruction(bank_dir, SAMPLER, blend=2, temperature=1e3).reconstruct(sr_problem, tiny_prior,
                                                                                       retriever)
    assert sum(even.details["weights"]) == pytest.approx(1.0) and (even.image - single.image).abs().max() > 1e-4


def test_a_bank_of_another_prior_is_refused_at_check(bank_dir, retriever, tiny_prior, sr_problem) -> None:
    other = tiny_prior.copy()
    with torch.no_grad():
        next(other.network.parameters()).add_(1e-3)
    with pytest.raises(BankError, match=r"another setup \(prior fingerprint '[0-9a-f]{16}' ≠ '[0-9a-f]{16}'"):
        BankReconstruction(bank_dir, SAMPLER).check(other, sr_problem.physics, retriever)


def test_a_bank_of_another_index_is_refused_at_check(bank_dir, encoder, tiny_prior, sr_problem, tmp_path) -> None:
    other_index = index_of(write_collection(tmp_path / "other", count=7, seed=1), tmp_path / "other_index", encoder)
    with pytest.raises(BankError, match=r"another setup \(index fingerprint"):
        BankReconstruction(bank_dir, SAMPLER).check(tiny_prior, sr_problem.physics, Retriever(other_index, encoder))


def test_a_missing_or_unusable_bank_is_refused_when_the_method_is_built(tmp_path, bank_dir) -> None:
    with pytest.raises(FileNotFoundError, match="no adapter bank at .*build it with `adir-bank`"):
        BankReconstruction(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="blend=3: the bank at .* has 2 adapters"):
        BankReconstruction(bank_dir, blend=3)


def test_the_tuned_bank_fine_tunes_the_picked_adapter_on_y_s_neighbours(bank_dir, retriever, tiny_prior, fit,
                                                                         sr_problem) -> None:
    method = BankReconstruction(bank_dir, SAMPLER, tune=fit, tune_iterations=3)
    method.check(tiny_prior, sr_problem.physics, retriever)
    estimate = method.reconstruct(sr_problem, tiny_prior, retriever)
    assert len(estimate.losses) == 3 and len(estimate.adaptation_images) == retriever.k
    assert estimate.adapter is not None and estimate.details["fallback"] is False
    untuned = BankReconstruction(bank_dir, SAMPLER).reconstruct(sr_problem, tiny_prior, retriever)
    assert (estimate.image - untuned.image).abs().max() > 0
    with pytest.raises(ValueError, match="tuning starts from one adapter"):
        BankReconstruction(bank_dir, SAMPLER, blend=2, tune=LoRAFit())
