"""The checkpoint shipped in assets/prior: it loads, through the model config too, and predicts finite ε."""

from __future__ import annotations

import json

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.models import UNetDenoiser, load_unet
from adir_exp.prior_training import PRIOR_DIR


def test_shipped_checkpoint_is_small_and_documented():
    weights = PRIOR_DIR / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size <= 20e6
    config = json.loads((PRIOR_DIR / "config.json").read_text())
    assert config["in_channels"] == config["out_channels"] == 3
    assert "Attn" not in "".join(config["down_block_types"][:-1])  # attention only at the lowest resolution
    card = (PRIOR_DIR / "MODEL_CARD.md").read_text()
    assert "adir-train-prior" in card and "final loss" in card
    assert (PRIOR_DIR / "loss.csv").is_file() and (PRIOR_DIR / "loss.png").is_file()


def test_shipped_prior_predicts_finite_eps_at_64px():
    unet = load_unet(PRIOR_DIR)
    x0 = torch.zeros(2, 3, 64, 64)
    noise = torch.randn_like(x0)
    with torch.no_grad():
        eps = unet(noise, torch.tensor([999, 999])).sample
    assert eps.shape == x0.shape and torch.isfinite(eps).all()
    # at t = T, x_t is almost pure noise: a trained ε-model returns (nearly) the noise itself
    assert torch.nn.functional.mse_loss(eps, noise) < 0.1


def test_model_config_builds_a_fixed_variance_denoiser():
    from adir_exp.cli.config import CONF_DIR  # registers the ${adir_assets:} resolver

    cfg = OmegaConf.load(CONF_DIR / "model" / "adir_prior.yaml")
    assert cfg.name == "adir_prior"
    denoiser = instantiate(cfg.denoiser)
    assert isinstance(denoiser, UNetDenoiser)
    assert denoiser.variance_type == cfg.denoiser.fixed_variance == "fixed_small"
    assert denoiser.sample_size == cfg.image_size
    schedule = instantiate(cfg.schedule)
    assert schedule.num_train_timesteps == 1000 and abs(float(schedule.betas[-1]) - 0.02) < 1e-9
    with torch.no_grad():
        out = denoiser(torch.randn(1, 3, 48, 80), torch.tensor([10]))
    assert out.eps.shape == (1, 3, 48, 80) and out.variance_values is None and torch.isfinite(out.eps).all()
