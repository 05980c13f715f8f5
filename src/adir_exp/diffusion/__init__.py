"""The diffusion process: training schedule, respacing, and the moments of each reverse step."""

from adir_exp.diffusion.process import GaussianDiffusion, ReverseStep
from adir_exp.diffusion.schedule import NoiseSchedule, space_timesteps

__all__ = ["GaussianDiffusion", "NoiseSchedule", "ReverseStep", "space_timesteps"]
