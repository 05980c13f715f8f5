"""Boundary extension as index gathering, so that its adjoint is an exact scatter-add.

Operators that convolve need the image extended past its border. Writing the extension as a gather with a
fixed index map makes every boundary rule linear and gives the adjoint for free (``index_add`` with the same
map), which keeps ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ exact for all of them.
"""

from __future__ import annotations

from typing import Literal

import torch

BoundaryMode = Literal["symmetric", "reflect", "circular", "replicate"]


def boundary_indices(length: int, before: int, after: int, mode: BoundaryMode) -> torch.Tensor:
    """Source index of every sample of the extended signal.

    ``symmetric`` mirrors with the edge sample repeated (MATLAB ``imresize``/numpy ``symmetric``), ``reflect``
    mirrors about the edge sample (torch ``reflect``), ``circular`` wraps, ``replicate`` repeats the edge.
    """
    positions = torch.arange(-before, length + after)
    if mode == "symmetric":
        period = 2 * length
        p = positions % period
        return torch.where(p < length, p, period - 1 - p)
    if mode == "reflect":
        if length < 2:
            return torch.zeros_like(positions)
        period = 2 * length - 2
        p = positions % period
        return torch.where(p < length, p, period - p)
    if mode == "circular":
        return positions % length
    if mode == "replicate":
        return positions.clamp(0, length - 1)
    raise ValueError(f"unknown boundary mode {mode!r}; choose symmetric, reflect, circular or replicate")


class Extension:
    """Extends the last two axes by fixed margins under one boundary rule; ``adjoint`` folds them back."""

    def __init__(self, height: int, width: int, margins: tuple[int, int, int, int], mode: BoundaryMode):
        top, bottom, left, right = margins
        self.height, self.width = height, width
        self.rows = boundary_indices(height, top, bottom, mode)
        self.cols = boundary_indices(width, left, right, mode)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.rows.to(x.device), self.cols.to(x.device)
        return x.index_select(-2, rows).index_select(-1, cols)

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        rows, cols = self.rows.to(z.device), self.cols.to(z.device)
        folded_cols = z.new_zeros(*z.shape[:-1], self.width).index_add_(-1, cols, z)
        return folded_cols.new_zeros(*z.shape[:-2], self.height, self.width).index_add_(-2, rows, folded_cols)
