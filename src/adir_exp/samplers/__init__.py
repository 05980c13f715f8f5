"""Samplers (``sampler`` config group): unconditional, ADIR guidance (Algorithm 1) and the DPS baseline."""

from adir_exp.samplers.adir import ADIRGuidedSampler
from adir_exp.samplers.base import Measurement, NonFiniteSampleError, Sampler, StepOutput
from adir_exp.samplers.dps import DPSSampler
from adir_exp.samplers.unconditional import UnconditionalSampler

__all__ = [
    "ADIRGuidedSampler",
    "DPSSampler",
    "Measurement",
    "NonFiniteSampleError",
    "Sampler",
    "StepOutput",
    "UnconditionalSampler",
]
