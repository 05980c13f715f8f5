"""PSNR and SSIM against hand-computed values, skimage, and pyiqa's published calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from adir_exp.metrics import PSNR, SSIM
from adir_exp.metrics.fidelity import rgb_to_y

# pyiqa ResultsCalibra/calibration_summary.csv, row "psnr(ours)" (RGB, data range 1), images I03 I04 I06 I08 I19.
PYIQA_PSNR = [21.1136, 20.9872, 27.0139, 23.3002, 21.6186]


def smooth_image(seed: int, size: int = 48) -> torch.Tensor:
    """A (1, 3, size, size) image with structure at several scales, so SSIM's local statistics vary."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, size // 8, size // 8, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (image + 0.05 * torch.rand(1, 3, size, size, generator=generator)).clamp(0, 1)


def test_psnr_of_a_constant_offset_is_computed_by_hand() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    # MSE = 0.1^2 = 0.01, so PSNR = 10 log10(1 / 0.01) = 20 dB; float32 0.6 - 0.5 is not exactly 0.1.
    assert PSNR()(x + 0.1, x) == pytest.approx([20.0, 20.0], abs=1e-5)
    signs = torch.where(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0)
    assert PSNR()(x[:1] + 0.05 * signs, x[:1]).item() == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-4)


def test_psnr_is_per_image_and_infinite_for_identical_images() -> None:
    x = torch.rand(3, 3, 8, 8)
    y = x.clone()
    y[1] = (y[1] + 0.1).clamp(0, 1)
    scores = PSNR()(y, x)
    assert scores.shape == (3,) and scores.dtype == torch.float64
    assert math.isinf(scores[0]) and math.isinf(scores[2]) and math.isfinite(scores[1])


def test_crop_border_ignores_the_border() -> None:
    x = torch.rand(1, 3, 16, 16)
    y = x.clone()
    y[..., :2, :] = 1 - y[..., :2, :]
    assert math.isinf(PSNR(crop_border=2)(y, x))
    assert math.isfinite(PSNR(crop_border=1)(y, x))
    with pytest.raises(ValueError, match="crop_border"):
        PSNR(crop_border=8)(y, x)


def test_y_channel_psnr_uses_bt601_luma() -> None:
    x = torch.full((1, 3, 8, 8), 0.4)
    delta = 0.1
    # Equal offsets on R, G, B move Y by delta * (65.481 + 128.553 + 24.966) / 255 = delta * 219 / 255.
    expected = 20 * math.log10(255 / (219 * delta))
    assert PSNR(y_channel=True)(x + delta, x).item() == pytest.approx(expected, abs=1e-4)
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16 / 255)
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == pytest.approx(235 / 255)


def test_psnr_reproduces_pyiqas_calibration(calibration_pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
    dist, ref = calibration_pairs
    np.testing.assert_allclose(PSNR()(dist, ref).numpy(), PYIQA_PSNR, atol=1e-3)


def test_ssim_of_identical_images_is_one() -> None:
    x = smooth_image(0)
    assert SSIM()(x, x).item() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("y_channel", [False, True])
def test_ssim_matches_skimage(y_channel: bool) -> None:
    x, y = smooth_image(1), smooth_image(2)
    y = (0.7 * x + 0.3 * y).clamp(0, 1)
    ours = SSIM(y_channel=y_channel)(y, x).item()

    def as_numpy(image: torch.Tensor) -> np.ndarray:
        image = rgb_to_y(image.double()) if y_channel else image.double()
        return image[0].permute(1, 2, 0).numpy()

    reference = structural_similarity(
        as_numpy(y), as_numpy(x), data_range=1.0, channel_axis=-1,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert 0.3 < ours < 0.99
    assert ours == pytest.approx(reference, abs=1e-9)


def test_ssim_matches_skimage_on_a_real_pair(calibration_pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
    dist, ref = (images[:1] for images in calibration_pairs)
    reference = structural_similarity(
        dist[0].permute(1, 2, 0).double().numpy(), ref[0].permute(1, 2, 0).double().numpy(), data_range=1.0,
        channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )  # fmt: skip
    assert SSIM()(dist, ref).item() == pytest.approx(reference, abs=1e-9)


def test_ssim_needs_room_for_its_window() -> None:
    with pytest.raises(ValueError, match="11x11"):
        SSIM()(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32))
