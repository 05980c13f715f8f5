"""y in image space: A⁺y for operators that change the size, y itself for same-size blurs."""

from __future__ import annotations

import torch

from adir_exp.operators import BicubicDownsample, BoxBlur, GaussianBlur


def test_blur_measurements_are_their_own_image_view() -> None:
    y = torch.rand(1, 3, 16, 16)
    for operator in (BoxBlur(5), GaussianBlur(2.0)):
        assert operator.y_as_image(y) is y


def test_super_resolution_view_is_the_pseudo_inverse() -> None:
    operator = BicubicDownsample(4)
    y = operator.A(torch.rand(1, 3, 32, 32))
    assert torch.allclose(operator.y_as_image(y), operator.A_pinv(y))
    assert operator.y_as_image(y).shape == (1, 3, 32, 32)
