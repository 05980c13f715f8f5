"""DeepRED (deep image prior + RED by ADMM) improves on y on a tiny ×4 SR problem within a few iterations.

Ground truth: a 32×32 image of flat regions (a disc and two edges), the kind of image both the deep image prior and
non-local means favour; y its ×4 bicubic downsampling (8×8), no noise. The measurement baseline (A⁺y, what
method=measurement returns for SR) has MSE 0.0040; DeepRED with a small skip network (3 scales of 16 channels),
lr 1e-2 and 100 iterations reached 0.0025 (0.62 of it; 0.0021 after 200), so the bound 0.8 leaves room for
platform differences while an unregularised or broken fit (it starts from a grey sigmoid output) fails it.
"""

from __future__ import annotations

import pytest
import torch

from adir_exp.methods import DeepRED, MeasurementAsImage
from adir_exp.operators import BicubicDownsample, GaussianNoise, Physics
from adir_exp.problem import measure


def flat_regions() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    disc = ((xx - 12) ** 2 + (yy - 14) ** 2 < 64).float()
    return torch.stack([0.2 + 0.6 * disc, 0.3 + 0.5 * (xx > 20).float(), 0.7 - 0.4 * (yy > 22).float()])[None]


def test_deepred_beats_the_measurement_baseline_on_tiny_sr_and_is_reproducible() -> None:
    truth = flat_regions()
    problem = measure("flat", truth, Physics(BicubicDownsample(4), GaussianNoise(0.0)), 0, torch.device("cpu"))
    method = DeepRED(iterations=100, lr=1e-2, input_depth=8, channels=16, skip_channels=4, scales=3, progress=False)
    estimate = method.reconstruct(problem).image
    baseline = MeasurementAsImage().reconstruct(problem).image
    error, reference = ((estimate - truth) ** 2).mean(), ((baseline - truth) ** 2).mean()
    assert estimate.shape == truth.shape and error < 0.8 * reference, (float(error), float(reference))
    assert torch.equal(method.reconstruct(problem).image, estimate)  # the problem's seed fixes z, θ₀ and the noise


def test_wrong_settings_and_image_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="initial must be 'zeros' or 'measurement'"):
        DeepRED(initial="bicubic")
    problem = measure("odd", torch.rand(1, 3, 36, 36), Physics(BicubicDownsample(4), GaussianNoise(0.0)), 0,
                      torch.device("cpu"))  # fmt: skip
    with pytest.raises(ValueError, match="multiples of 8 and at least 16 .*, got 36×36"):
        DeepRED(iterations=1, channels=4, input_depth=2, scales=3, progress=False).reconstruct(problem)
