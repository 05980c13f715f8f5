"""Reconstruction methods (``method`` config group): one class per kind of table row."""

from adir_exp.methods.base import Estimate, Method
from adir_exp.methods.baselines import BicubicUpsampling, MeasurementAsImage, PseudoInverse
from adir_exp.methods.diffusion import DiffusionReconstruction

__all__ = [
    "BicubicUpsampling",
    "DiffusionReconstruction",
    "Estimate",
    "MeasurementAsImage",
    "Method",
    "PseudoInverse",
]
