"""Separable strided correlation: an outer-product kernel applied as two 1-D passes, with an exact SVD.

Per channel the operator is the Kronecker product H_rows ⊗ H_cols of two 1-D matrices, each holding one axis's
taps, boundary extension and stride. Their SVDs (float64, once per image size) give A's: singular values
σ_r[i]·σ_c[j], singular vectors applied as one matmul per axis, so no (HW)×(HW) matrix is ever formed. Applying
the kernel as two 1-D passes (rather than one 2-D convolution with the outer product) keeps A exactly equal to
that Kronecker product in any precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adir_exp.operators.convolution import StridedFilter
from adir_exp.operators.padding import BoundaryMode, boundary_indices


def axis_matrix(taps: torch.Tensor, length: int, stride: int, margin: int, boundary: BoundaryMode) -> torch.Tensor:
    """One axis as a (length/stride × length) float64 matrix.

    Row i holds the taps at extended positions s·i … s·i + K − 1; the boundary rule's index map sends each
    extended position back to the sample it copies, where the tap is added (several taps may land on one sample
    near the border, e.g. the edge sample under ``replicate``).
    """
    k, out = taps.numel(), length // stride
    source = boundary_indices(length, margin, margin, boundary)
    positions = stride * torch.arange(out)[:, None] + torch.arange(k)[None, :]
    rows = torch.arange(out)[:, None].expand(out, k)
    matrix = torch.zeros(out, length, dtype=torch.float64)
    values = taps.detach().to("cpu", torch.float64).repeat(out)
    return matrix.index_put_((rows.flatten(), source[positions].flatten()), values, accumulate=True)


class SeparableCorrelation(StridedFilter):
    """Strided correlation with the kernel ``outer(taps_rows, taps_cols)``; A = U Σ Vᵀ from the per-axis SVDs.

    Spectral layout (see :mod:`adir_exp.operators.base`): per channel, Vᵀx is the coefficient grid
    V_rowsᵀ x V_cols (H × W); its top-left (H/s) × (W/s) block pairs with Uᵀy = U_rowsᵀ y U_cols and has the singular
    values σ_r[i]·σ_c[j]; the rest of the grid is A's null space. For stride s > 1 the coefficients are reordered
    so that the blocks of all channels come first, in (C, H/s, W/s) order.
    """

    supports_svd = True

    def __init__(
        self,
        taps_rows: torch.Tensor,
        taps_cols: torch.Tensor,
        stride: int = 1,
        boundary: BoundaryMode = "reflect",
        channels: int = 3,
    ):
        if taps_rows.ndim != 1 or taps_cols.ndim != 1:
            raise ValueError(f"taps must be 1-D, got shapes {tuple(taps_rows.shape)} and {tuple(taps_cols.shape)}")
        super().__init__((taps_rows.numel(), taps_cols.numel()), stride, boundary, channels)
        self.register_buffer("taps_rows", taps_rows.to(torch.float64).clone())
        self.register_buffer("taps_cols", taps_cols.to(torch.float64).clone())
        self._svds: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._orders: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def kernel(self) -> torch.Tensor:
        """The equivalent 2-D kernel (for inspection; A applies it as two 1-D passes)."""
        return torch.outer(self.taps_rows, self.taps_cols)

    def _filters(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.in_channels
        rows = self.taps_rows.to(like.dtype).view(1, 1, -1, 1).expand(c, 1, -1, 1)
        cols = self.taps_cols.to(like.dtype).view(1, 1, 1, -1).expand(c, 1, 1, -1)
        return rows, cols

    def _correlate(self, extended: torch.Tensor) -> torch.Tensor:
        rows, cols = self._filters(extended)
        out = F.conv2d(extended, rows, stride=(self.stride, 1), groups=self.in_channels)
        return F.conv2d(out, cols, stride=(1, self.stride), groups=self.in_channels)

    def _correlate_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        rows, cols = self._filters(y)
        spread = F.conv_transpose2d(y, cols, stride=(1, self.stride), groups=self.in_channels)
        return F.conv_transpose2d(spread, rows, stride=(self.stride, 1), groups=self.in_channels)

    # --- SVD ---

    def axis_svd(self, axis: str, length: int, like: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(U, σ, Vᵀ) of one axis's matrix (``axis`` = "rows" or "cols"), full matrices, on ``like``'s device/dtype."""
        taps = {"rows": self.taps_rows, "cols": self.taps_cols}[axis]
        base_key = (axis, length, taps.dtype)
        if base_key not in self._svds:
            margin = self.margins[0] if axis == "rows" else self.margins[2]
            matrix = axis_matrix(taps, length, self.stride, margin, self.boundary)
            self._svds[base_key] = torch.linalg.svd(matrix, full_matrices=True)
        if like is None:
            return self._svds[base_key]
        key = (*base_key, like.device, like.dtype)
        if key not in self._svds:
            self._svds[key] = tuple(f.to(like.device, like.dtype) for f in self._svds[base_key])
        return self._svds[key]

    def _order(self, channels: int, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat positions of the spectral coefficients (paired blocks first) and the inverse permutation."""
        key = (channels, height, width)
        if key not in self._orders:
            block = torch.zeros(height, width, dtype=torch.bool)
            block[: height // self.stride, : width // self.stride] = True
            block = block.expand(channels, height, width)
            grid = torch.arange(channels * height * width).reshape(channels, height, width)
            order = torch.cat([grid[block], grid[~block]])
            self._orders[key] = (order, torch.argsort(order))
        return tuple(o.to(device) for o in self._orders[key])

    def _permute(self, z: torch.Tensor, inverse: bool) -> torch.Tensor:
        if self.stride == 1:
            return z
        order = self._order(*z.shape[1:], z.device)[int(inverse)]
        return z.reshape(z.shape[0], -1)[:, order].reshape(z.shape)

    def _V_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        _, _, vh_r = self.axis_svd("rows", x.shape[-2], x)
        _, _, vh_c = self.axis_svd("cols", x.shape[-1], x)
        return self._permute(vh_r @ x @ vh_c.T, inverse=False)

    def _V(self, z: torch.Tensor) -> torch.Tensor:
        _, _, vh_r = self.axis_svd("rows", z.shape[-2], z)
        _, _, vh_c = self.axis_svd("cols", z.shape[-1], z)
        return vh_r.T @ self._permute(z, inverse=True) @ vh_c

    def _U_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        u_r, _, _ = self.axis_svd("rows", y.shape[-2] * self.stride, y)
        u_c, _, _ = self.axis_svd("cols", y.shape[-1] * self.stride, y)
        return u_r.T @ y @ u_c

    def _U(self, z: torch.Tensor) -> torch.Tensor:
        u_r, _, _ = self.axis_svd("rows", z.shape[-2] * self.stride, z)
        u_c, _, _ = self.axis_svd("cols", z.shape[-1] * self.stride, z)
        return u_r @ z @ u_c.T

    def _singular_values(self, channels: int, height: int, width: int) -> torch.Tensor:
        _, s_r, _ = self.axis_svd("rows", height)
        _, s_c, _ = self.axis_svd("cols", width)
        grid = torch.zeros(height, width, dtype=torch.float64)
        grid[: s_r.numel(), : s_c.numel()] = torch.outer(s_r, s_c)
        grid = grid.expand(channels, height, width).contiguous()
        return self._permute(grid[None], inverse=False)[0]
