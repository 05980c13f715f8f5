"""Diffusion networks: the denoiser interface, ADM/GD via a converter, diffusers UNet directories, analytic priors."""

from adir_exp.models.analytic import GaussianPriorDenoiser
from adir_exp.models.denoiser import Denoiser, DenoiserOutput, UNetDenoiser
from adir_exp.models.guided_diffusion import (
    ADMFlags,
    load_guided_diffusion,
    random_adm,
    unet_from_adm_state_dict,
)
from adir_exp.models.unet import UNetDirectoryError, load_unet

__all__ = [
    "ADMFlags",
    "Denoiser",
    "DenoiserOutput",
    "GaussianPriorDenoiser",
    "UNetDenoiser",
    "UNetDirectoryError",
    "load_guided_diffusion",
    "load_unet",
    "random_adm",
    "unet_from_adm_state_dict",
]
