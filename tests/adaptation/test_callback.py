"""The sampler callback: the adapted model reconstructs y during and at the end of fit, from the same seed."""

from __future__ import annotations

import pytest
import torch
from lightning import Trainer

from adir_exp.adaptation import (
    AdaptationDataModule,
    GDObjective,
    LoRAAdaptation,
    ReconstructionCallback,
)
from adir_exp.samplers import ADIRGuidedSampler

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


def adapt(denoiser, schedule, random_lpips, photo, problem, at=()):
    sampler = ADIRGuidedSampler(denoiser, schedule, num_steps=3, progress=False)
    callback = ReconstructionCallback(sampler, problem, at=at)
    before = sampler.sample(problem.image_shape, problem.measurement, generator=problem.generator())
    module = LoRAAdaptation(GDObjective(denoiser, schedule, perceptual=random_lpips), lr=1e-3)
    trainer = Trainer(
        max_steps=3, logger=False, callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(module, datamodule=AdaptationDataModule([photo], crop_size=32, batch_size=2, iterations=3, expected=1))
    return callback, module, before


def test_final_reconstruction_uses_the_adapted_model_and_snapshots_are_kept(
    denoiser, schedule, random_lpips, photo, sr_problem
) -> None:
    callback, module, before = adapt(denoiser, schedule, random_lpips, photo, sr_problem, at=[1, 2, 3])
    assert callback.result.shape == sr_problem.image_shape
    assert sorted(callback.snapshots) == [1, 2]
    assert not torch.equal(callback.result, before)  # the adapters changed the prior
    assert torch.equal(callback.result, callback.reconstruct(module))  # same seed, same adapted model: same image
