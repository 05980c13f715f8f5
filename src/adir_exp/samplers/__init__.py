"""Samplers (``sampler`` config group): unconditional, ADIR guidance (Algorithm 1) and the DPS and DDRM baselines."""

from adir_exp.samplers.adir import ADIRGuidedSampler
from adir_exp.samplers.base import (
    Measurement,
    NonFiniteSampleError,
    Reconstructor,
    Sampler,
    StepOutput,
)
from adir_exp.samplers.ddrm import DDRMSampler
from adir_exp.samplers.dps import DPSSampler
from adir_exp.samplers.unconditional import UnconditionalSampler

__all__ = [
    "ADIRGuidedSampler",
    "DDRMSampler",
    "DPSSampler",
    "Measurement",
    "NonFiniteSampleError",
    "Reconstructor",
    "Sampler",
    "StepOutput",
    "UnconditionalSampler",
]
