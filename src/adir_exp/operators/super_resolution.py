"""Super-resolution degradation: MATLAB ``imresize`` bicubic downscaling (anti-aliased) by an integer factor."""

from __future__ import annotations

import torch

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
