"""The forward model of a linear inverse problem, y = A x + e: the operator and its noise in one object.

Like deepinv's ``LinearPhysics``: whoever holds a ``Physics`` can make a measurement from an image, and every
command makes it the same way (:func:`adir_exp.problem.measure`), so the same image, task and seed give the
same y everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from adir_exp.operators.base import LinearOperator
from adir_exp.operators.noise import GaussianNoise


class Physics(nn.Module):
    """y = A x + e with ``operator`` A and Gaussian ``noise`` e (σ on the 0–255 scale)."""

    def __init__(self, operator: LinearOperator, noise: GaussianNoise) -> None:
        super().__init__()
        self.operator = operator
        self.noise = noise

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y for an image batch x on the model's [−1, 1] scale; e is drawn from ``generator``."""
        return self.noise(self.operator.A(x), generator=generator)

    def __repr__(self) -> str:
        return f"Physics({type(self.operator).__name__}, {self.noise!r})"
