"""Degradation operators (``task`` config group): A, its true adjoint, a pseudo-inverse, an SVD where one exists
in closed or separable form, and the noise; ``Physics`` holds operator and noise."""

from adir_exp.operators.base import (
    LinearOperator,
    OperatorInputError,
    SVDUnavailableError,
)
from adir_exp.operators.blur import BoxBlur, GaussianBlur
from adir_exp.operators.colorization import Colorization
from adir_exp.operators.identity import Identity
from adir_exp.operators.inpainting import Inpainting
from adir_exp.operators.noise import GaussianNoise
from adir_exp.operators.physics import Physics
from adir_exp.operators.separable import SeparableCorrelation
from adir_exp.operators.super_resolution import BicubicDownsample, bicubic_upsample

__all__ = [
    "BicubicDownsample",
    "BoxBlur",
    "Colorization",
    "GaussianBlur",
    "GaussianNoise",
    "Identity",
    "Inpainting",
    "LinearOperator",
    "OperatorInputError",
    "Physics",
    "SVDUnavailableError",
    "SeparableCorrelation",
    "bicubic_upsample",
]
