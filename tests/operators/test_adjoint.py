"""⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for every operator: those of every task config, and each boundary rule."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.cli.config import CONF_DIR
from adir_exp.operators import BoxBlur, GaussianBlur, Inpainting, SeparableCorrelation
from adir_exp.operators.convolution import StridedCorrelation

TASK_FILES = sorted((CONF_DIR / "task").glob("*.yaml"))


def assert_adjoint(operator, shape=(2, 3, 48, 64)) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    y = torch.randn(operator.measurement_shape(shape), dtype=torch.float64)
    lhs = (operator.A(x) * y).sum()
    rhs = (x * operator.A_adjoint(y)).sum()
    assert torch.isclose(lhs, rhs, rtol=1e-5, atol=0), (float(lhs), float(rhs))


def test_every_task_has_an_operator_config() -> None:
    assert {p.stem for p in TASK_FILES} >= {"sr4", "sr8", "deblur_box", "deblur_gauss", "colorization", "inpainting", "denoise"}


@pytest.mark.parametrize("task_file", TASK_FILES, ids=lambda p: p.stem)
def test_task_operator_is_adjoint(task_file) -> None:
    operator = instantiate(OmegaConf.load(task_file).physics.operator).double()
    assert_adjoint(operator)


@pytest.mark.parametrize("boundary", ["symmetric", "reflect", "circular", "replicate"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_strided_correlation_adjoint_for_every_boundary(boundary, stride) -> None:
    kernel = torch.rand(stride + 4, stride + 2)
    operator = StridedCorrelation(kernel, stride=stride, boundary=boundary).double()
    assert_adjoint(operator, shape=(1, 3, 12 * stride, 9 * stride))


@pytest.mark.parametrize("boundary", ["symmetric", "reflect", "circular", "replicate"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_separable_correlation_adjoint_for_every_boundary(boundary, stride) -> None:
    operator = SeparableCorrelation(torch.rand(stride + 4), torch.rand(stride + 2), stride=stride, boundary=boundary)
    assert_adjoint(operator.double(), shape=(1, 3, 12 * stride, 9 * stride))


def test_random_inpainting_mask_is_adjoint_and_reproducible() -> None:
    a, b = Inpainting(mask="random", fraction=0.3, seed=4), Inpainting(mask="random", fraction=0.3, seed=4)
    assert torch.equal(a.mask_for(16, 16), b.mask_for(16, 16))
    assert 0.6 < a.mask_for(64, 64).mean() < 0.8
    assert_adjoint(a)


def test_blur_kernels_are_normalised() -> None:
    assert torch.isclose(BoxBlur(5).kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    gaussian = GaussianBlur(2.0)
    assert gaussian.kernel.shape == (13, 13)
    assert torch.isclose(gaussian.kernel.sum(), torch.tensor(1.0, dtype=torch.float64))
    constant = torch.full((1, 3, 20, 20), 0.7)
    assert torch.allclose(gaussian.A(constant), constant, atol=1e-6)
