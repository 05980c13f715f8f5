from __future__ import annotations

import pytest
import torch

from adir_exp.operators import (
    Colorization,
    GaussianNoise,
    Inpainting,
    OperatorInputError,
)


def test_sigma_is_on_the_255_scale_of_a_two_wide_range() -> None:
    noise = GaussianNoise(sigma=10)
    assert noise.std == pytest.approx(2 * 10 / 255)
    y = torch.zeros(1, 3, 256, 256)
    sample = noise(y, generator=torch.Generator().manual_seed(0))
    assert sample.std().item() == pytest.approx(noise.std, rel=0.02)


def test_zero_sigma_leaves_the_measurement_unchanged() -> None:
    y = torch.rand(1, 3, 8, 8)
    assert torch.equal(GaussianNoise(0)(y), y)


def test_negative_sigma_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        GaussianNoise(sigma=-1)


def test_colorization_shapes_and_pseudo_inverse() -> None:
    operator = Colorization()
    x = torch.rand(2, 3, 8, 8)
    y = operator.A(x)
    assert y.shape == (2, 1, 8, 8)
    assert torch.allclose(operator.A(operator.A_pinv(y)), y)


def test_check_measurement_names_both_shapes() -> None:
    with pytest.raises(OperatorInputError, match=r"\(1, 3, 8, 8\).*\(1, 3, 16, 16\)"):
        Inpainting().check_measurement(torch.zeros(1, 3, 8, 8), (1, 3, 16, 16))


def test_unknown_inpainting_mask_kind() -> None:
    with pytest.raises(ValueError, match="unknown mask kind"):
        Inpainting(mask="stripes").A(torch.zeros(1, 3, 4, 4))
