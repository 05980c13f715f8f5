"""Degradation operators (``task`` config group): A, its true adjoint, a pseudo-inverse, and the noise; ``Physics``
holds both."""

from adir_exp.operators.base import LinearOperator, OperatorInputError
from adir_exp.operators.blur import BoxBlur, GaussianBlur
from adir_exp.operators.colorization import Colorization
from adir_exp.operators.identity import Identity
from adir_exp.operators.inpainting import Inpainting
from adir_exp.operators.noise import GaussianNoise
from adir_exp.operators.physics import Physics
from adir_exp.operators.super_resolution import BicubicDownsample

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
]
