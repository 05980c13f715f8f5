"""``adir-train-prior``: train the embedded DDPM prior on the corpus' training split (conf/train_prior.yaml).

Writes the EMA UNet (config.json + diffusion_pytorch_model.safetensors), the loss curve (loss.csv, loss.png)
and a MODEL_CARD.md with the exact command, steps, wall time and data counts into ``export_dir``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from adir_exp.cli.config import CONFIG_PATH, ConfigError, reported_as, resolved
from adir_exp.paths import configure_environment

configure_environment()

import hydra
from omegaconf import DictConfig, OmegaConf


def train(cfg: DictConfig) -> Path:
    """Fit the prior as configured and return the export directory."""
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from adir_exp.prior_training.card import write_model_card
    from adir_exp.prior_training.training import (
        CropDataModule,
        DDPMPrior,
        ExportEMA,
        LossCSV,
        build_unet,
    )

    if cfg.trainer.threads:
        torch.set_num_threads(int(cfg.trainer.threads))
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 on tensor cores; convolutions already use it
    L.seed_everything(cfg.seed, workers=True)
    export_dir = Path(cfg.export_dir)
    if cfg.init_from:  # continue from an export (its architecture), e.g. the shipped checkpoint on more data
        from adir_exp.models import load_unet

        unet = load_unet(cfg.init_from).train()
    else:
        unet = build_unet(sample_size=cfg.data.crop, **cfg.unet)
    module = DDPMPrior(unet, instantiate(cfg.schedule), **cfg.optim)
    data = CropDataModule(**cfg.data)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        max_steps=cfg.trainer.max_steps,
        max_time={"minutes": cfg.trainer.max_minutes},
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        precision=cfg.trainer.precision,
        logger=False,
        enable_checkpointing=False,
        callbacks=[LossCSV(export_dir / "loss.csv"), ExportEMA(export_dir, cfg.export_every)],
        log_every_n_steps=10,
    )
    start = time.monotonic()
    trainer.fit(module, datamodule=data)
    wall = time.monotonic() - start
    command = " ".join(["adir-train-prior", *sys.argv[1:]])
    root = trainer.strategy.root_device
    device = f"{root.type}: {torch.cuda.get_device_name(root)}" if root.type == "cuda" else (
        f"cpu, {torch.get_num_threads()} threads")
    write_model_card(export_dir, resolved(cfg), command=command, steps=trainer.global_step, wall_seconds=wall, device=device)
    return export_dir


def check(cfg: DictConfig) -> None:
    """Refuse settings that would train on nothing, before any work, naming the key."""
    for key in ("data.crop", "data.batch_size", "data.epoch_length", "trainer.max_steps"):
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key}={value!r} must be a positive integer")
    if cfg.data.epoch_length < cfg.data.batch_size:
        raise ConfigError(
            f"data.epoch_length={cfg.data.epoch_length} is smaller than data.batch_size={cfg.data.batch_size}: "
            f"an epoch would hold no batch"
        )


@hydra.main(config_path=CONFIG_PATH, config_name="train_prior", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with reported_as("adir-train-prior"):
        check(cfg)
        print(f"prior written to {train(cfg)}")


if __name__ == "__main__":
    main()
