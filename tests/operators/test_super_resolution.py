"""The SR operator equals MATLAB ``imresize(x, 1/s, 'bicubic')``, checked against a literal port of its algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adir_exp.operators import BicubicDownsample, OperatorInputError, bicubic_upsample


def matlab_contributions(in_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """imresize.m's ``contributions`` for the bicubic kernel, 1-based indices; antialiasing (a kernel stretched by
    1/scale) only when shrinking, as MATLAB's default."""

    def cubic(x):
        ax = np.abs(x)
        return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))

    if scale < 1:
        kernel, kernel_width = (lambda d: scale * cubic(scale * d)), 4.0 / scale
    else:
        kernel, kernel_width = cubic, 4.0
    out_length = math.ceil(in_length * scale)
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    p = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(p)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = aux[np.mod(indices - 1, len(aux)).astype(int)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize rows then columns (a separable filter: order does not matter in floating point)."""
    out = image
    for axis in (0, 1):
        weights, indices = matlab_contributions(out.shape[axis], scale)
        moved = np.moveaxis(out, axis, 0)
        gathered = moved[indices - 1]  # (out_len, taps, ...)
        resized = np.einsum("ot,ot...->o...", weights, gathered)
        out = np.moveaxis(resized, 0, axis)
    return out


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_matches_matlab_imresize(factor) -> None:
    rng = np.random.default_rng(factor)
    image = rng.random((24 * factor // 2, 16 * factor // 2, 3))
    expected = matlab_imresize(image, 1.0 / factor)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    got = BicubicDownsample(factor).double().A(x)[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("size", [(5, 7), (1, 3), (16, 12)])
def test_upsampling_matches_matlab_imresize(factor, size) -> None:
    rng = np.random.default_rng(factor)
    image = rng.random((*size, 3))
    expected = matlab_imresize(image, float(factor))
    y = torch.from_numpy(image).permute(2, 0, 1)[None]
    got = bicubic_upsample(y, factor)[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_operator_upsampling_is_the_matlab_bicubic_of_its_factor() -> None:
    operator = BicubicDownsample(4)
    y = torch.rand(2, 3, 6, 5)
    assert operator.upsample(y).shape == (2, 3, 24, 20)
    assert torch.equal(operator.upsample(y), bicubic_upsample(y, 4))
    constant = torch.full((1, 3, 4, 4), 0.3)
    torch.testing.assert_close(operator.upsample(constant), torch.full((1, 3, 16, 16), 0.3))
    with pytest.raises(OperatorInputError, match="measurement has shape"):
        operator.upsample(torch.rand(1, 1, 4, 4))


def test_size_not_divisible_by_factor_is_a_clear_error() -> None:
    with pytest.raises(OperatorInputError, match="not divisible by the factor 4"):
        BicubicDownsample(4).A(torch.rand(1, 3, 30, 32))


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(OperatorInputError, match="expected 3 channels, got 1"):
        BicubicDownsample(4).A(torch.rand(1, 1, 32, 32))


def test_measurement_of_wrong_shape_is_rejected_by_the_adjoint() -> None:
    with pytest.raises(OperatorInputError, match="does not match"):
        BicubicDownsample(4).A_adjoint(torch.rand(1, 1, 8, 8))


def test_pseudo_inverse_reproduces_the_measurement() -> None:
    operator = BicubicDownsample(4)
    y = operator.A(torch.rand(1, 3, 32, 32))
    assert torch.allclose(operator.A(operator.A_pinv(y)), y, atol=1e-3)
