"""Super-resolution: MATLAB ``imresize`` bicubic downscaling (anti-aliased) by an integer factor, and its bicubic
upscaling for the classic baseline."""

from __future__ import annotations

from functools import lru_cache

import torch

from adir_exp.operators.padding import boundary_indices
from adir_exp.operators.separable import SeparableCorrelation


def matlab_cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = −0.5, as MATLAB's ``imresize`` defines it."""
    ax = x.abs()
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def bicubic_antialias_taps(factor: int) -> torch.Tensor:
    """The 4·factor normalised 1-D taps MATLAB uses to shrink by ``factor``.

    MATLAB stretches the cubic kernel by the factor when shrinking (anti-aliasing): h(d) = cubic(d/s)/s, with
    d the distance from the output sample's centre. For integer factors every output sample sees the same taps,
    so downscaling is a strided correlation.
    """
    length = 4 * factor
    distances = (length - 1) / 2 - torch.arange(length, dtype=torch.float64)
    taps = matlab_cubic(distances / factor) / factor
    return taps / taps.sum()


@lru_cache(maxsize=32)
def bicubic_upsample_matrix(length: int, factor: int) -> torch.Tensor:
    """The (factor·length × length) float64 matrix of MATLAB's bicubic enlargement along one axis.

    Output sample i sits at input coordinate (i + 0.5)/s − 0.5; its four nearest inputs get the unstretched cubic
    weights (MATLAB anti-aliases only when shrinking), normalised to sum to one, and indices past the border are
    mirrored with the edge sample repeated (MATLAB's symmetric rule).
    """
    out = factor * length
    centres = (torch.arange(out, dtype=torch.float64) + 0.5) / factor - 0.5
    inputs = torch.floor(centres)[:, None].long() - 1 + torch.arange(4)[None, :]
    weights = matlab_cubic(centres[:, None] - inputs)
    weights = weights / weights.sum(dim=1, keepdim=True)
    margin = 3
    source = boundary_indices(length, margin, margin, "symmetric")[inputs + margin]
    rows = torch.arange(out)[:, None].expand_as(inputs)
    matrix = torch.zeros(out, length, dtype=torch.float64)
    return matrix.index_put_((rows.flatten(), source.flatten()), weights.flatten(), accumulate=True)


def bicubic_upsample(y: torch.Tensor, factor: int) -> torch.Tensor:
    """MATLAB ``imresize(y, factor, 'bicubic')`` for an integer ``factor`` on (…, H, W) tensors."""
    rows = bicubic_upsample_matrix(y.shape[-2], int(factor)).to(y.device, y.dtype)
    cols = bicubic_upsample_matrix(y.shape[-1], int(factor)).to(y.device, y.dtype)
    return rows @ y @ cols.T


class BicubicDownsample(SeparableCorrelation):
    """y = (bicubic anti-aliasing filter, then keep every ``factor``-th sample), as DIV2K's LR images were made.

    Matches MATLAB ``imresize(x, 1/factor, 'bicubic')`` in floating point, including its boundary rule
    (symmetric extension with the edge sample repeated). Image sides must be multiples of ``factor``.
    """

    def __init__(self, factor: int = 4, channels: int = 3):
        if factor < 1 or int(factor) != factor:
            raise ValueError(f"SR factor must be a positive integer, got {factor}")
        taps = bicubic_antialias_taps(int(factor))
        super().__init__(taps, taps, stride=int(factor), boundary="symmetric", channels=channels)
        self.factor = int(factor)

    def upsample(self, y: torch.Tensor) -> torch.Tensor:
        """The classic bicubic baseline: MATLAB ``imresize(y, factor, 'bicubic')``, the same cubic as A's."""
        self.check_measurement(y, self.image_shape(y.shape))
        return bicubic_upsample(y, self.factor)
