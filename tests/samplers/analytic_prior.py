"""An analytic Gaussian prior on 3×16×16 images and its exact posterior mean, for checking samplers."""

from __future__ import annotations

import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import GaussianPriorDenoiser

SHAPE = (3, 16, 16)


def exact_posterior_mean(operator, y, mean, std, sigma) -> torch.Tensor:
    """m + S Aᵀ(A S Aᵀ + σ² I)⁻¹(y − A m) for x ~ N(m, S = diag(std²)), with A's dense matrix."""
    n = mean.numel()
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *SHAPE)
    matrix = operator.double().A(basis).reshape(n, -1).T
    operator.float()
    prior_cov = torch.diag(std.double().flatten() ** 2)
    gram = matrix @ prior_cov @ matrix.T + sigma**2 * torch.eye(matrix.shape[0], dtype=torch.float64)
    residual = y.double().flatten() - matrix @ mean.double().flatten()
    return (mean.double().flatten() + prior_cov @ matrix.T @ torch.linalg.solve(gram, residual)).reshape(SHAPE).float()


def make_prior():
    """(mean, std, a draw from the prior, schedule, exact ε* denoiser, generator for the measurement noise)."""
    generator = torch.Generator().manual_seed(0)
    mean = 0.4 * torch.rand(SHAPE, generator=generator) - 0.2
    std = 0.15 + 0.2 * torch.rand(SHAPE, generator=generator)
    truth = mean + std * torch.randn(SHAPE, generator=generator)
    schedule = NoiseSchedule()
    return mean, std, truth, schedule, GaussianPriorDenoiser(mean, std, schedule), generator
