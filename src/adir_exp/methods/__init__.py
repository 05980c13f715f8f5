"""Reconstruction methods (``method`` config group): one class per kind of table row."""

from adir_exp.methods.bank import BankReconstruction
from adir_exp.methods.base import Estimate, Method
from adir_exp.methods.baselines import (
    BicubicUpsampling,
    MeasurementAsImage,
    PseudoInverse,
)
from adir_exp.methods.deepred import DeepRED
from adir_exp.methods.diffusion import DiffusionReconstruction
from adir_exp.methods.peers import DeepinvReconstruction
from adir_exp.methods.restorer import SupervisedRestorer

__all__ = [
    "BankReconstruction",
    "BicubicUpsampling",
    "DeepRED",
    "DeepinvReconstruction",
    "DiffusionReconstruction",
    "Estimate",
    "MeasurementAsImage",
    "Method",
    "PseudoInverse",
    "SupervisedRestorer",
]
