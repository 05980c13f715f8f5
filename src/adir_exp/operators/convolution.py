"""Depthwise correlation with a fixed kernel, a boundary rule and a stride: blur and SR share it."""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F

from adir_exp.operators.base import LinearOperator, OperatorInputError
from adir_exp.operators.padding import BoundaryMode, Extension


class StridedFilter(LinearOperator):
    """y = decimate_s(k ⋆ extend(x)): the same kernel for every channel, output sample i centred on input s·i + (s−1)/2.

    The margins (K − s)/2 on each side centre the kernel on each output sample, so the output has H/s × W/s
    samples. The kernel is applied as a correlation (identical to convolution for the symmetric kernels used
    here). Subclasses say how the kernel is stored and applied to the extended image.
    """

    def __init__(self, kernel_size: tuple[int, int], stride: int, boundary: BoundaryMode, channels: int):
        super().__init__()
        kh, kw = kernel_size
        if (kh - stride) % 2 or (kw - stride) % 2 or kh < stride or kw < stride:
            raise ValueError(f"kernel size {tuple(kernel_size)} minus stride {stride} must be even and non-negative")
        self.stride = int(stride)
        self.boundary = boundary
        self.in_channels = channels
        self.margins = ((kh - stride) // 2, (kh - stride) // 2, (kw - stride) // 2, (kw - stride) // 2)
        self._extensions: dict[tuple[int, int], Extension] = {}

    @abstractmethod
    def _correlate(self, extended: torch.Tensor) -> torch.Tensor:
        """The strided correlation of the extended image (no padding: the extension is the padding)."""

    @abstractmethod
    def _correlate_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Adjoint of ``_correlate``: spreads y back onto the extended image."""

    def _extension(self, height: int, width: int) -> Extension:
        key = (height, width)
        if key not in self._extensions:
            self._extensions[key] = Extension(height, width, self.margins, self.boundary)
        return self._extensions[key]

    def measurement_shape(self, image_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        b, c, h, w = self._check_image(image_shape)
        if h % self.stride or w % self.stride:
            raise OperatorInputError(
                f"{type(self).__name__}: image size {h}×{w} is not divisible by the factor {self.stride}; "
                f"crop it to a multiple of {self.stride} first (adir_exp.data.crop_to_multiple)"
            )
        return (b, c, h // self.stride, w // self.stride)

    def image_shape(self, measurement_shape: torch.Size | tuple[int, ...]) -> tuple[int, ...]:
        b, _, h, w = self._check_rank(measurement_shape, "measurement")
        return (b, self.in_channels, h * self.stride, w * self.stride)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._correlate(self._extension(x.shape[-2], x.shape[-1])(x))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        height, width = y.shape[-2] * self.stride, y.shape[-1] * self.stride
        return self._extension(height, width).adjoint(self._correlate_adjoint(y))


class StridedCorrelation(StridedFilter):
    """A strided correlation with an arbitrary 2-D kernel (no SVD: see ``SeparableCorrelation`` for one)."""

    def __init__(self, kernel: torch.Tensor, stride: int = 1, boundary: BoundaryMode = "reflect", channels: int = 3):
        if kernel.ndim != 2:
            raise ValueError(f"kernel must be 2-D, got shape {tuple(kernel.shape)}")
        super().__init__(tuple(kernel.shape), stride, boundary, channels)
        kh, kw = kernel.shape
        self.register_buffer("weight", kernel.to(torch.float32).expand(channels, 1, kh, kw).clone())

    def _correlate(self, extended: torch.Tensor) -> torch.Tensor:
        return F.conv2d(extended, self.weight.to(extended.dtype), stride=self.stride, groups=self.in_channels)

    def _correlate_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(y, self.weight.to(y.dtype), stride=self.stride, groups=self.in_channels)
