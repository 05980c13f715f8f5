"""The embedded default prior: a small DDPM trained here on registry-package photos (docs/prior.md)."""

from __future__ import annotations

from pathlib import Path

from diffusers import UNet2DModel

from adir_exp.paths import ASSETS_DIR

PRIOR_DIR = ASSETS_DIR / "prior"


def load_prior(checkpoint: str | Path | None = None) -> UNet2DModel:
    """The shipped prior's EMA UNet, or the one exported to ``checkpoint`` (a directory with config.json and
    diffusion_pytorch_model.safetensors, as ``adir-train-prior`` writes), in eval mode."""
    directory = Path(checkpoint) if checkpoint is not None else PRIOR_DIR
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"no prior in {directory}: expected config.json + diffusion_pytorch_model.safetensors")
    return UNet2DModel.from_pretrained(directory, use_safetensors=True).eval()


__all__ = ["PRIOR_DIR", "load_prior"]
