"""Diffusion priors (``model`` config group), one class per model family: network, adaptation objective, reconstructor."""

from adir_exp.priors.base import Prior, PriorConfigError, SamplerFactory
from adir_exp.priors.pixel import PixelPrior

__all__ = ["PixelPrior", "Prior", "PriorConfigError", "SamplerFactory"]
