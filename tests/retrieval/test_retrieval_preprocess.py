import numpy as np
import pytest
import torch
from PIL import Image
from retrieval_helpers import make_image, to_tensor

from adir_exp.retrieval.preprocess import Preprocess

PRE = Preprocess(size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def test_pil_and_tensor_paths_agree():
    """A file in the collection and the same image held as a tensor must embed identically."""
    image = make_image(np.random.default_rng(1), 48, 80)
    torch.testing.assert_close(PRE(image), PRE(to_tensor(image)))


def test_output_shape_and_normalisation():
    out = PRE(torch.full((1, 3, 20, 90), 0.5))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = (0.5 - torch.tensor(PRE.mean)) / torch.tensor(PRE.std)
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)


def test_grey_y_is_repeated_to_rgb():
    grey = torch.rand(1, 1, 40, 40)
    torch.testing.assert_close(PRE(grey), PRE(grey.expand(1, 3, 40, 40)))


def test_low_resolution_y_is_upsampled_bicubically():
    y = torch.rand(1, 3, 8, 8)
    up = torch.nn.functional.interpolate(y, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
    torch.testing.assert_close(PRE(y), PRE(up))


def test_values_outside_unit_range_are_clipped():
    y = torch.rand(3, 32, 32) * 1.4 - 0.2
    torch.testing.assert_close(PRE(y), PRE(y.clamp(0, 1)))


def test_centre_crop_of_the_shortest_side():
    left, right = torch.zeros(3, 32, 16), torch.ones(3, 32, 16)
    wide = torch.cat([left, torch.full((3, 32, 32), 0.5), right], dim=2)  # 32 x 64: crop keeps the middle
    torch.testing.assert_close(PRE(wide), PRE(torch.full((3, 32, 32), 0.5)))


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (4, 8, 8), (8, 8)])
def test_rejects_batches_and_odd_channel_counts(shape):
    with pytest.raises(ValueError):
        PRE(torch.rand(shape))


def test_large_jpeg_decodes_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    make_image(np.random.default_rng(2), 600, 800).save(path, quality=95)
    with Image.open(path) as image:
        fast = PRE.load(image)
    with Image.open(path) as image:
        full = PRE(image)
    assert fast.shape == full.shape == (3, 32, 32)
    assert (fast - full).abs().mean() < 0.1  # DCT-scaled decoding only perturbs the pixels slightly
