"""Adaptation data: seeded random crops, repetition of small sets (with a warning), images below the crop size."""

from __future__ import annotations

import warnings

import pytest
import torch

from adir_exp.adaptation import (
    AdaptationDataModule,
    AdaptationDataWarning,
    AdaptationImageError,
)


def coloured(value: float, height: int = 40, width: int = 48) -> torch.Tensor:
    """A constant image whose crops identify it."""
    return torch.full((1, 3, height, width), value)


def batches(module: AdaptationDataModule) -> list[torch.Tensor]:
    return list(module.train_dataloader())


def quiet(**kwargs) -> AdaptationDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these sets are large enough: no warning expected
        return AdaptationDataModule(**kwargs)


def test_batches_are_crops_in_model_range_and_seeded(photo) -> None:
    settings = {"images": [photo, torch.rand(1, 3, 64, 40)] * 3, "crop_size": 32, "batch_size": 6, "iterations": 4}
    first = batches(quiet(**settings, seed=0))
    assert len(first) == 4
    assert all(b.shape == (6, 3, 32, 32) and b.dtype == torch.float32 for b in first)
    assert min(b.min() for b in first) >= -1 and max(b.max() for b in first) <= 1
    assert min(b.min() for b in first) < -0.5  # [0, 1] was mapped to [-1, 1]
    again = batches(quiet(**settings, seed=0))
    other = batches(quiet(**settings, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_crops_are_windows_of_the_image_at_its_own_scale() -> None:
    image = torch.arange(40 * 48, dtype=torch.float32).view(1, 1, 40, 48).expand(1, 3, 40, 48) / (40 * 48)
    module = quiet(images=[image] * 2, crop_size=32, batch_size=2, iterations=20, seed=0)
    corners = set()
    for batch in batches(module):
        for crop in batch:
            index = round(float((crop[0, 0, 0] + 1) / 2 * 40 * 48))
            top, left = divmod(index, 48)
            torch.testing.assert_close(crop, image[0, :, top : top + 32, left : left + 32] * 2 - 1)
            corners.add((top, left))
    assert len(corners) > 10  # positions vary over the whole valid range
    assert all(0 <= top <= 8 and 0 <= left <= 16 for top, left in corners)


def test_short_side_brings_every_image_to_the_test_scale_first() -> None:
    from adir_exp.data.images import resize_short_side

    large, small = torch.rand(1, 3, 160, 240), torch.rand(1, 3, 40, 50)
    module = quiet(images=[large, small] * 3, crop_size=16, batch_size=6, iterations=2, seed=0, short_side=32)
    assert [tuple(i.shape[-2:]) for i in module.images[:2]] == [(32, 48), (32, 40)]
    torch.testing.assert_close(module.images[0], resize_short_side(large, 32)[0] * 2 - 1)


def test_every_image_is_used_once_before_any_repeats() -> None:
    images = [coloured(v) for v in (0.1, 0.3, 0.5, 0.7, 0.9)]
    module = quiet(images=images, crop_size=32, batch_size=5, iterations=3, seed=0)
    for batch in batches(module):
        assert sorted(round(float(c.mean()), 4) for c in batch) == [-0.8, -0.4, 0.0, 0.4, 0.8]


def test_fewer_images_than_the_batch_warn_and_repeat() -> None:
    with pytest.warns(AdaptationDataWarning, match="only 2 adaptation image.*batch of 6.*repeated"):
        module = AdaptationDataModule([coloured(0.25), coloured(0.75)], crop_size=32, batch_size=6, iterations=2)
    for batch in batches(module):
        values = [round(float(c.mean()), 4) for c in batch]
        assert values.count(-0.5) == 3 and values.count(0.5) == 3


def test_fewer_images_than_requested_warn() -> None:
    images = [coloured(v / 10) for v in range(8)]
    with pytest.warns(AdaptationDataWarning, match="only 8 adaptation image.*20 requested"):
        AdaptationDataModule(images, crop_size=32, batch_size=6, iterations=1, expected=20)


def test_a_declared_single_image_set_does_not_warn(photo) -> None:
    quiet(images=[photo], crop_size=32, batch_size=6, iterations=1, expected=1)


def test_small_images_are_upscaled_to_the_crop_by_default() -> None:
    module = quiet(images=[torch.rand(1, 3, 16, 24)] * 6, crop_size=32, batch_size=6, iterations=1)
    assert module.images[0].shape == (3, 32, 48)
    assert batches(module)[0].shape == (6, 3, 32, 32)


def test_small_images_raise_when_asked_to() -> None:
    images = [torch.rand(1, 3, 64, 64)] * 5 + [torch.rand(1, 3, 20, 64)]
    names = [f"img{i}.png" for i in range(6)]
    with pytest.raises(AdaptationImageError, match=r"img5\.png is 20×64, smaller than the 32×32 crop"):
        AdaptationDataModule(images, crop_size=32, batch_size=6, small_images="error", names=names)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"images": []}, AdaptationImageError, "no adaptation images"),
        ({"images": [torch.rand(1, 1, 40, 40)]}, AdaptationImageError, r"must be \(1, 3, H, W\)"),
        ({"images": [torch.rand(1, 3, 40, 40)], "small_images": "crop"}, ValueError, "upscale' or 'error"),
    ],
)
def test_unusable_sets_raise(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        AdaptationDataModule(**kwargs, crop_size=32, batch_size=1)
