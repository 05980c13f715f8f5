"""ReconstructionCallback: the adapted model reconstructs y during and at the end of fit, images and metrics out."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger
from peft.tuners.lora import LoraLayer

from adir_exp.adaptation import AdaptationDataModule, GDObjective, LoRAAdaptation, ReconstructionCallback
from adir_exp.metrics import PSNR, MetricSuite
from adir_exp.operators import BicubicDownsample, GaussianNoise
from adir_exp.reconstruction import degrade, restore
from adir_exp.samplers import ADIRGuidedSampler

pytestmark = pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")


class ImageLogger(CSVLogger):
    """A CSV logger that also takes images, as W&B's does."""

    def __init__(self, save_dir: Path) -> None:
        super().__init__(save_dir, name="logs", version="")
        self.images: list[tuple[str, str, int | None]] = []

    def log_image(self, key: str, images: list, step: int | None = None) -> None:
        self.images += [(key, image, step) for image in images]


def adapt(tmp_path, denoiser, schedule, random_lpips, photo, every_n_steps=None, merge=False):
    truth = photo[..., 8:40, 8:40]
    degradation = degrade(truth, BicubicDownsample(4), GaussianNoise(0.0), seed=0, device=torch.device("cpu"))
    sampler = ADIRGuidedSampler(denoiser, schedule, num_steps=3, progress=False)
    metrics = MetricSuite({"psnr": PSNR()})
    before = restore(degradation, sampler, metrics)
    callback = ReconstructionCallback(degradation, sampler, metrics, tmp_path, every_n_steps=every_n_steps, merge=merge)
    logger = ImageLogger(tmp_path)
    module = LoRAAdaptation(GDObjective(denoiser, schedule, perceptual=random_lpips), lr=1e-3)
    trainer = Trainer(
        max_steps=3, logger=logger, callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1, log_every_n_steps=1,
    )
    trainer.fit(module, datamodule=AdaptationDataModule([photo], crop_size=32, batch_size=2, iterations=3, expected=1))
    logger.finalize("success")
    return callback, logger, before, degradation, sampler, metrics


def test_final_reconstruction_uses_the_adapted_model_and_is_written_and_logged(
    tmp_path, denoiser, schedule, random_lpips, photo
) -> None:
    callback, logger, before, degradation, sampler, metrics = adapt(
        tmp_path, denoiser, schedule, random_lpips, photo, every_n_steps=1
    )
    result = callback.result
    for name in ("grid.png", "reconstruction.png", "ground_truth.png", "measurement.png", "pseudo_inverse.png"):
        assert (tmp_path / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "adaptation").iterdir()) == ["step_000001.png", "step_000002.png"]
    assert not torch.equal(result.estimate, before.estimate)  # the adapters changed the prior
    again = restore(degradation, sampler, metrics)  # same state, same adapted model: the same image
    assert torch.equal(result.estimate, again.estimate)
    assert set(result.metrics) == {"psnr", "pseudo_inverse/psnr"}
    assert logger.images == [
        ("reconstruction", str(tmp_path / "adaptation" / "step_000001.png"), 1),
        ("reconstruction", str(tmp_path / "adaptation" / "step_000002.png"), 2),
        ("grid", str(tmp_path / "grid.png"), 3),
    ]
    with open(tmp_path / "logs" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows if row.get("psnr")] == ["1", "2", "3"]
    assert any(row.get("adaptation/loss") for row in rows)


def test_merge_folds_the_adapters_before_the_final_reconstruction(
    tmp_path, denoiser, schedule, random_lpips, photo
) -> None:
    callback, _, _, degradation, sampler, metrics = adapt(tmp_path, denoiser, schedule, random_lpips, photo, merge=True)
    assert not any(isinstance(m, LoraLayer) for m in denoiser.unet.modules())
    assert not (tmp_path / "adaptation").exists()
    torch.testing.assert_close(callback.result.estimate, restore(degradation, sampler, metrics).estimate)
