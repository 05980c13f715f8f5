"""Diffusion priors (``model`` config group): ADM/GD via a converter, analytic priors, the denoiser interface."""

from adir_exp.models.analytic import GaussianPriorDenoiser
from adir_exp.models.denoiser import Denoiser, DenoiserOutput, UNetDenoiser
from adir_exp.models.guided_diffusion import (
    ADMFlags,
    load_guided_diffusion,
    random_adm,
    unet_from_adm_state_dict,
)

__all__ = [
    "ADMFlags",
    "Denoiser",
    "DenoiserOutput",
    "GaussianPriorDenoiser",
    "UNetDenoiser",
    "load_guided_diffusion",
    "random_adm",
    "unet_from_adm_state_dict",
]
