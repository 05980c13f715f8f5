"""The operators' SVDs against a dense SVD of the same operator, built by applying A to every basis image."""

from __future__ import annotations

import pytest
import torch

from adir_exp.operators import (
    BicubicDownsample,
    BoxBlur,
    Colorization,
    GaussianBlur,
    Identity,
    Inpainting,
    OperatorInputError,
    SeparableCorrelation,
    SVDUnavailableError,
)
from adir_exp.operators.convolution import StridedCorrelation

BOUNDARIES = ["symmetric", "reflect", "circular", "replicate"]
CASES = [
    *[(BicubicDownsample(f), (1, 3, 16, 16)) for f in (2, 4)],
    (BicubicDownsample(2), (1, 3, 16, 8)),
    *[(BoxBlur(5, boundary=b), (1, 3, 8, 8)) for b in BOUNDARIES],
    *[(GaussianBlur(1.0, boundary=b), (1, 3, 8, 8)) for b in BOUNDARIES],
    (BoxBlur(3, boundary="symmetric"), (1, 3, 8, 12)),
    (SeparableCorrelation(*torch.rand(2, 5, generator=torch.Generator().manual_seed(0)), boundary="replicate"), (1, 3, 8, 10)),
    (Colorization(), (1, 3, 8, 8)),
    (Inpainting(mask="random", fraction=0.4, seed=2), (1, 3, 8, 8)),
    (Inpainting(mask="box", fraction=0.5), (1, 3, 8, 8)),
    (Identity(), (1, 3, 8, 8)),
]
IDS = [f"{type(op).__name__}-{getattr(op, 'boundary', '')}-{getattr(op, 'stride', '')}-{'x'.join(map(str, s[2:]))}" for op, s in CASES]


def basis(shape: tuple[int, ...]) -> torch.Tensor:
    n = torch.Size(shape[1:]).numel()
    return torch.eye(n, dtype=torch.float64).reshape(n, *shape[1:])


def columns(apply, shape: tuple[int, ...]) -> torch.Tensor:
    """The dense matrix of a linear map of (B, …) tensors: its images of the basis, as columns."""
    images = basis(shape)
    return apply(images).reshape(images.shape[0], -1).T


@pytest.fixture(params=CASES, ids=IDS)
def dense(request):
    operator, shape = request.param
    operator = operator.double()
    measurement_shape = operator.measurement_shape(shape)
    matrix = columns(operator.A, shape)
    u = columns(operator.U, measurement_shape)
    v = columns(operator.V, shape)
    sigma = operator.singular_values(shape).flatten()
    return operator, shape, measurement_shape, matrix, u, v, sigma


def test_singular_vectors_are_orthonormal(dense) -> None:
    _, _, _, _, u, v, _ = dense
    torch.testing.assert_close(u.T @ u, torch.eye(u.shape[1], dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(v.T @ v, torch.eye(v.shape[1], dtype=torch.float64), atol=1e-10, rtol=0)


def test_usv_reproduces_the_operator(dense) -> None:
    _, _, _, matrix, u, v, sigma = dense
    m, n = matrix.shape
    assert sigma.shape == (n,)
    assert torch.all(sigma[m:] == 0), "entries past the measurement size lie in the null space"
    sigma_matrix = torch.zeros(m, n, dtype=torch.float64)
    sigma_matrix[range(m), range(m)] = sigma[:m]
    torch.testing.assert_close(u @ sigma_matrix @ v.T, matrix, atol=1e-10, rtol=0)


def test_singular_values_match_the_dense_svd(dense) -> None:
    _, _, _, matrix, _, _, sigma = dense
    m = matrix.shape[0]
    ours = torch.sort(sigma[:m], descending=True).values
    torch.testing.assert_close(ours, torch.linalg.svdvals(matrix), atol=1e-10, rtol=0)


def test_adjoint_singular_vectors_invert_the_singular_vectors(dense) -> None:
    operator, shape, measurement_shape, _, u, v, _ = dense
    x = torch.randn(2, *shape[1:], dtype=torch.float64)
    y = torch.randn(2, *measurement_shape[1:], dtype=torch.float64)
    torch.testing.assert_close(operator.V_adjoint(x).reshape(2, -1), x.reshape(2, -1) @ v, atol=1e-12, rtol=0)
    torch.testing.assert_close(operator.U_adjoint(y).reshape(2, -1), y.reshape(2, -1) @ u, atol=1e-12, rtol=0)
    torch.testing.assert_close(operator.V(operator.V_adjoint(x)), x, atol=1e-12, rtol=0)


def test_pseudo_inverse_matches_the_dense_one(dense) -> None:
    operator, _, measurement_shape, matrix, _, _, _ = dense
    y = torch.randn(2, *measurement_shape[1:], dtype=torch.float64)
    expected = y.reshape(2, -1) @ torch.linalg.pinv(matrix, rtol=1e-10).T
    got = operator.A_pinv(y, damping=0.0).reshape(2, -1)
    torch.testing.assert_close(got, expected, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_damped_svd_pseudo_inverse_is_what_conjugate_gradients_approximate(boundary) -> None:
    """Aᵀ(A Aᵀ + λI)⁻¹y: the SVD path and the CG path (same kernel as a plain 2-D correlation) agree."""
    blur = GaussianBlur(1.0, boundary=boundary).double()
    plain = StridedCorrelation(blur.kernel, boundary=boundary).double()
    y = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    matrix = columns(blur.A, (1, 3, 12, 12))
    damped = matrix.T @ torch.linalg.solve(matrix @ matrix.T + 1e-2 * torch.eye(matrix.shape[0], dtype=torch.float64), y.reshape(2, -1).T)
    torch.testing.assert_close(blur.A_pinv(y, damping=1e-2).reshape(2, -1), damped.T, atol=1e-10, rtol=0)
    # StridedCorrelation keeps its kernel in float32: agreement to its precision times the gain 1/(2√λ) = 5.
    torch.testing.assert_close(plain.A_pinv(y, damping=1e-2, tol=1e-12), blur.A_pinv(y, damping=1e-2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_two_pass_correlation_equals_the_2d_kernel(boundary, stride) -> None:
    rows, cols = torch.rand(stride + 4, dtype=torch.float64), torch.rand(stride + 2, dtype=torch.float64)
    separable = SeparableCorrelation(rows, cols, stride=stride, boundary=boundary).double()
    plain = StridedCorrelation(torch.outer(rows, cols), stride=stride, boundary=boundary).double()
    x = torch.randn(2, 3, 6 * stride, 5 * stride, dtype=torch.float64)
    # StridedCorrelation keeps its kernel in float32, hence 1e-6.
    torch.testing.assert_close(separable.A(x), plain.A(x), atol=1e-6, rtol=0)
    y = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(separable.A_adjoint(y), plain.A_adjoint(y), atol=1e-6, rtol=0)


def test_float32_svd_reproduces_the_operator() -> None:
    operator = BicubicDownsample(4)
    x = torch.randn(2, 3, 32, 32)
    sigma = operator.singular_values(x.shape).float()
    spectral = operator.to_measurement_spectrum(sigma * operator.V_adjoint(x), operator.measurement_shape(x.shape))
    torch.testing.assert_close(operator.U(spectral), operator.A(x), atol=1e-5, rtol=0)


def test_spectrum_helpers_pad_and_truncate() -> None:
    z = torch.arange(2 * 12, dtype=torch.float64).reshape(2, 3, 2, 2)
    head = Colorization.to_measurement_spectrum(z, (2, 1, 2, 2))
    assert torch.equal(head, z[:, :1])
    padded = Colorization.to_image_spectrum(head, (2, 3, 2, 2))
    assert torch.equal(padded[:, :1], head) and torch.all(padded[:, 1:] == 0)


def test_non_separable_kernel_has_no_svd_but_a_pseudo_inverse() -> None:
    operator = StridedCorrelation(torch.tensor([[0.0, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.1, 0.0]]))  # rank 3
    with pytest.raises(SVDUnavailableError, match="StridedCorrelation has no closed-form or separable SVD"):
        operator.singular_values((1, 3, 8, 8))
    with pytest.raises(SVDUnavailableError):
        operator.V_adjoint(torch.rand(1, 3, 8, 8))
    y = operator.A(torch.rand(1, 3, 8, 8))
    assert torch.allclose(operator.A(operator.A_pinv(y)), y, atol=1e-3)


def test_svd_methods_check_shapes() -> None:
    operator = BicubicDownsample(4)
    with pytest.raises(OperatorInputError, match="not divisible by the factor 4"):
        operator.V_adjoint(torch.rand(1, 3, 30, 32))
    with pytest.raises(OperatorInputError, match="expected 3 channels"):
        operator.singular_values((1, 1, 32, 32))
    with pytest.raises(OperatorInputError, match="measurement has shape"):
        Colorization().U_adjoint(torch.rand(1, 3, 8, 8))
