"""PSNR and SSIM, written out in torch so their conventions are explicit rather than inherited.

Convention (both): RGB in ``[0, 1]``, data range 1, computed in float64 per image. ``crop_border=k`` drops
``k`` pixels on every side first (the super-resolution habit of ignoring the border a scale-``k`` operator
cannot constrain). ``y_channel=True`` scores only the luma of MATLAB's ``rgb2ycbcr`` (ITU-R BT.601,
``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``), as BasicSR-style SR tables do; it is not pyiqa's
YIQ-based ``ssim``/``psnry``.
"""

from __future__ import annotations

import torch

from adir_exp.metrics.base import Metric

BT601_LUMA = (65.481, 128.553, 24.966)


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (studio swing, values in [16/255, 235/255]) of a ``(B, 3, H, W)`` RGB image in [0, 1]."""
    weights = image.new_tensor(BT601_LUMA).view(1, 3, 1, 1)
    return (16.0 + (image * weights).sum(dim=1, keepdim=True)) / 255.0


def prepare(image: torch.Tensor, crop_border: int, y_channel: bool) -> torch.Tensor:
    """Crop the border, optionally reduce to Y, and move to float64 (the scores are sums of tiny terms)."""
    if crop_border:
        height, width = image.shape[-2:]
        if 2 * crop_border >= min(height, width):
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {height}x{width} image")
        image = image[..., crop_border:-crop_border, crop_border:-crop_border]
    image = image.to(torch.float64)
    return rgb_to_y(image) if y_channel else image


class FidelityMetric(Metric):
    """Full-reference metric under the module's convention: border crop, optional Y channel, float64."""

    requires_reference = True

    def __init__(self, crop_border: int = 0, y_channel: bool = False, device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        self.crop_border = crop_border
        self.y_channel = y_channel

    def prepared(self, pred: torch.Tensor, target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        assert target is not None
        return prepare(pred, self.crop_border, self.y_channel), prepare(target, self.crop_border, self.y_channel)


class PSNR(FidelityMetric):
    """Peak signal-to-noise ratio in dB, ``10 log10(1 / MSE)`` with the MSE over all channels and pixels of an
    image; identical images score ``inf``."""

    name = "psnr"
    higher_is_better = True

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        x, y = self.prepared(pred, target)
        mse = (x - y).pow(2).mean(dim=(1, 2, 3))
        return 10.0 * torch.log10(1.0 / mse)


def gaussian_taps(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    taps = torch.exp(-(coords**2) / (2 * sigma**2))
    return taps / taps.sum()


def valid_filter_matrix(length: int, taps: torch.Tensor) -> torch.Tensor:
    """Banded matrix ``M`` with ``M @ v`` = ``v`` correlated with ``taps`` where they fully overlap.

    Filtering as two matmuls runs on BLAS; a float64 depthwise ``conv2d`` on CPU is over ten times slower.
    """
    matrix = taps.new_zeros(length - taps.numel() + 1, length)
    for offset, tap in enumerate(taps):
        matrix.diagonal(offset).fill_(tap)
    return matrix


class SSIM(FidelityMetric):
    """Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03.

    The (separable) window is applied only where it fits inside the image, each channel is scored separately and
    the map is averaged over channels and pixels. This equals ``skimage.metrics.structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=...``.
    """

    name = "ssim"
    higher_is_better = True
    window_size = 11
    sigma = 1.5
    k1 = 0.01
    k2 = 0.03

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        x, y = self.prepared(pred, target)
        if min(x.shape[-2:]) < self.window_size:
            raise ValueError(f"SSIM needs images of at least {self.window_size}x{self.window_size}")
        taps = gaussian_taps(self.window_size, self.sigma, x)
        rows = valid_filter_matrix(x.shape[-2], taps)
        cols = valid_filter_matrix(x.shape[-1], taps).T

        def local_mean(image: torch.Tensor) -> torch.Tensor:
            return rows @ image @ cols

        mu_x, mu_y = local_mean(x), local_mean(y)
        var_x = local_mean(x * x) - mu_x**2
        var_y = local_mean(y * y) - mu_y**2
        cov_xy = local_mean(x * y) - mu_x * mu_y
        c1, c2 = self.k1**2, self.k2**2
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        return ssim_map.mean(dim=(1, 2, 3))
