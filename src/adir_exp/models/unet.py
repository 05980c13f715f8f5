"""Diffusers ``UNet2DModel`` directories (what ``save_pretrained`` writes), read from a local path only."""

from __future__ import annotations

from pathlib import Path

from diffusers import UNet2DModel


class UNetDirectoryError(FileNotFoundError):
    """The directory does not hold a diffusers UNet."""


def load_unet(path: str | Path) -> UNet2DModel:
    """The UNet saved in ``path`` (config.json + diffusion_pytorch_model.safetensors), in eval mode."""
    directory = Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise UNetDirectoryError(
            f"no diffusers UNet in {directory}: expected config.json and diffusion_pytorch_model.safetensors "
            f"(as UNet2DModel.save_pretrained or adir-train-prior export them)"
        )
    return UNet2DModel.from_pretrained(directory, use_safetensors=True, local_files_only=True).eval()
