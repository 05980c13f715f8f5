"""Image loading for every common file kind, and the crop policy for SR factors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adir_exp.data.images import (
    ImageReadError,
    center_crop,
    crop_to_multiple,
    image_grid,
    load_image,
    save_image,
)
from adir_exp.operators import OperatorInputError


@pytest.mark.parametrize(
    ("mode", "array"),
    [
        ("L", np.full((10, 12), 128, np.uint8)),
        ("RGBA", np.full((10, 12, 4), 200, np.uint8)),
        ("RGB", np.full((10, 12, 3), 255, np.uint8)),
        ("I;16", np.full((10, 12), 65535 // 2, np.uint16)),
    ],
)
def test_load_any_mode_as_rgb_unit_range(tmp_path, mode, array) -> None:
    path = tmp_path / f"{mode.replace(';', '')}.png"
    Image.fromarray(array).save(path)  # uint16 → "I;16", 4 channels → RGBA
    image = load_image(path)
    assert image.shape == (1, 3, 10, 12) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    if mode == "I;16":
        assert image.mean().item() == pytest.approx(0.5, abs=1e-4)


def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError, match="broken.png"):
        load_image(path)


def test_crop_policy_for_sr_factors() -> None:
    assert crop_to_multiple(torch.zeros(1, 3, 30, 45), 4).shape[-2:] == (28, 44)
    with pytest.raises(OperatorInputError, match="smaller than the requested crop"):
        center_crop(torch.zeros(1, 3, 10, 10), 16)


def test_save_and_grid_roundtrip(tmp_path) -> None:
    image = torch.rand(1, 3, 8, 8)
    grid = image_grid([image, torch.rand(1, 1, 4, 4)], ["a", "b"])
    assert grid.shape[1] == 3 and grid.shape[-1] > 16
    path = save_image(image, tmp_path / "x.png")
    assert torch.allclose(load_image(path), image, atol=1 / 255)
