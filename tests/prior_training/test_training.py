"""The training entry point end to end on a tiny synthetic folder, and the crop sampler it feeds."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from adir_exp.cli.config import CONF_DIR
from adir_exp.cli.train_prior import train
from adir_exp.models import UNetDirectoryError, load_unet
from adir_exp.prior_training.training import PyramidCrops


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "train"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40 + 10 * i, 60, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def test_pyramid_crops_have_the_crop_size_and_model_range(folder):
    dataset = PyramidCrops(folder, crop=16, length=5)
    assert len(dataset) == 5
    # short sides 40, 50, 60 → levels 16, 24, 36 (≤ short side) for each photo
    assert [tuple(level.shape[-2:]) for level in dataset.levels[:3]] == [(16, 24), (24, 36), (36, 54)]
    crops = torch.stack([dataset[i] for i in range(50)])
    assert crops.shape == (50, 3, 16, 16)
    assert crops.min() >= -1.0 and crops.max() <= 1.0 and crops.std() > 0.3


def test_pyramid_crops_reject_images_smaller_than_the_crop(folder):
    with pytest.raises(ValueError, match="smaller"):
        PyramidCrops(folder, crop=48, length=1)


def test_three_training_steps_write_a_loadable_checkpoint_and_card(folder, tmp_path):
    export = tmp_path / "export"
    overrides = [
        f"data.root={folder}",
        "data.crop=16",
        "data.batch_size=2",
        f"export_dir={export}",
        "export_every=0",
        "unet.block_out_channels=[32,32]",
        "unet.attention_head_dim=8",
        "trainer.max_steps=3",
        "trainer.accelerator=cpu",
        "trainer.threads=1",
        "optim.warmup_steps=1",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train_prior", overrides=overrides)
    assert train(cfg) == export

    with open(export / "loss.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (export / "loss.png").stat().st_size > 0
    card = (export / "MODEL_CARD.md").read_text()
    assert "3 optimiser steps × batch 2" in card and "3 training images" in card

    unet = load_unet(export)
    assert list(unet.config.block_out_channels) == [32, 32] and unet.config.out_channels == 3
    with torch.no_grad():
        eps = unet(torch.randn(1, 3, 24, 24), torch.tensor([500])).sample
    assert eps.shape == (1, 3, 24, 24) and torch.isfinite(eps).all()


def test_load_unet_names_a_missing_checkpoint(tmp_path):
    with pytest.raises(UNetDirectoryError, match="no diffusers UNet in"):
        load_unet(tmp_path)
