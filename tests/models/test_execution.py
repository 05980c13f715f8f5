"""Execution options: precision contexts restore torch's settings, the wrapped denoiser returns fp32, layouts agree."""

from __future__ import annotations

import pytest
import torch

from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from adir_exp.models.execution import ExecutedDenoiser, precision_context, tf32_math
from adir_exp.operators import BicubicDownsample, GaussianNoise
from adir_exp.samplers import ADIRGuidedSampler, Measurement
from tests.adaptation.conftest import TINY_ADM

X = torch.linspace(-1, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
T = torch.tensor([10, 700])


def tiny_denoiser() -> UNetDenoiser:
    return UNetDenoiser(random_adm(TINY_ADM, seed=0)).eval().requires_grad_(False)


def test_tf32_math_sets_both_backends_and_restores_them() -> None:
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = matmul.fp32_precision, conv.fp32_precision
    with tf32_math(True):
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        with tf32_math(False):
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    assert (matmul.fp32_precision, conv.fp32_precision) == before


def test_bf16_autocasts_only_inside_the_context_and_unknown_precisions_are_refused() -> None:
    with precision_context("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with precision_context("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16, got 'fp16'"), \
            precision_context("fp16", "cpu"):  # type: ignore[arg-type]
        pass


def test_fp32_wrapper_is_the_denoiser_exactly() -> None:
    with torch.no_grad():
        expected = tiny_denoiser()(X, T)
        got = ExecutedDenoiser(tiny_denoiser())(X, T)
    assert got.variance_values is not None
    assert torch.equal(got.eps, expected.eps) and torch.equal(got.variance_values, expected.variance_values)


def test_bf16_wrapper_returns_fp32_close_to_the_fp32_outputs() -> None:
    wrapped = ExecutedDenoiser(tiny_denoiser(), precision="bf16")
    assert wrapped.variance_type == "learned_range"
    with torch.no_grad():
        expected, got = tiny_denoiser()(X, T), wrapped(X, T)
    for name in ("eps", "variance_values"):
        value, reference = getattr(got, name), getattr(expected, name)
        assert value.dtype == torch.float32 and value.is_contiguous()
        assert not torch.equal(value, reference)  # it did run in bf16
        # random weights amplify rounding: bf16 (8-bit mantissa) ends ≈ 5 % from fp32 on this network
        assert (value - reference).norm() / reference.norm() < 0.1, name


def test_channels_last_gives_the_same_outputs_in_the_default_layout() -> None:
    """float64, so that only the layout differs (in float32 the other summation order moves this random network's
    outputs by ≈ 1e-4 relative)."""
    wrapped = ExecutedDenoiser(tiny_denoiser().double(), channels_last=True)
    assert wrapped.inner.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, got = tiny_denoiser().double()(X.double(), T), wrapped(X.double(), T)
    assert got.eps.is_contiguous()
    torch.testing.assert_close(got.eps, expected.eps, rtol=0, atol=1e-10)


def test_guided_step_with_a_bf16_denoiser_keeps_the_sampler_arithmetic_fp32() -> None:
    schedule = NoiseSchedule()
    operator = BicubicDownsample(4)
    truth = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    measurement = Measurement(GaussianNoise(10)(operator.A(truth)), operator)
    results = {}
    for precision in ("fp32", "bf16"):
        sampler = ADIRGuidedSampler(ExecutedDenoiser(tiny_denoiser(), precision=precision), schedule, num_steps=20,
                                    progress=False)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, 32, 32, generator=generator)
        with torch.no_grad():
            results[precision] = sampler.step(x, sampler.indices[0], measurement, generator).prev_sample
    assert results["bf16"].dtype == torch.float32
    assert (results["bf16"] - results["fp32"]).norm() / results["fp32"].norm() < 0.01
