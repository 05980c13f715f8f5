"""Bad inputs in a benchmark folder: each kind is loaded correctly or reported, skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adir_exp.data.images import load_image, resize_short_side
from adir_exp.evaluation.benchmark_images import (
    DatasetError,
    Tiles,
    expand_tiles,
    list_images,
    load_all,
    parse_shard,
    prepare,
    shard,
    tile_boxes,
)


@pytest.fixture
def messy_folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((70, 90)) * 255).astype(np.uint8)).save(tmp_path / "0801.png")  # grey
    Image.fromarray((rng.random((70, 90, 4)) * 255).astype(np.uint8)).save(tmp_path / "0802.png")  # RGBA
    Image.fromarray((rng.random((70, 90)) * 65535).astype(np.uint16)).save(tmp_path / "0803.png")  # 16-bit
    Image.fromarray((rng.random((67, 93, 3)) * 255).astype(np.uint8)).save(tmp_path / "0804.png")  # odd size
    (tmp_path / "0805.png").write_bytes(b"not an image")  # corrupt
    (tmp_path / "notes.txt").write_text("ignored")
    return tmp_path


def test_every_kind_loads_or_is_reported(messy_folder) -> None:
    images = list_images(messy_folder, first_n=50)
    assert [i.image_id for i in images] == ["0801", "0802", "0803", "0804", "0805"]
    loaded, skipped = load_all(images, size=64, mode="center_crop")
    assert [i.image_id for i, _ in loaded] == ["0801", "0802", "0803", "0804"]
    assert all(t.shape == (1, 3, 64, 64) for _, t in loaded)
    assert [i.image_id for i, _ in skipped] == ["0805"]


def test_small_images_are_resized_up_before_cropping(messy_folder) -> None:
    loaded, _ = load_all(list_images(messy_folder, 1), size=128, mode="center_crop")
    assert loaded[0][1].shape == (1, 3, 128, 128)


def test_missing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DatasetError, match="DIV2K_valid_HR"):
        list_images(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no image files"):
        list_images(tmp_path)


def test_shards_partition_the_list(messy_folder) -> None:
    images = list_images(messy_folder)
    parts = [shard(images, *parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(i.image_id for p in parts for i in p) == [i.image_id for i in images]
    for wrong in ("3/3", "abc", "1/0", "-1/2", "1"):
        with pytest.raises(ValueError, match="'i/n'"):
            parse_shard(wrong)


def test_first_n_must_be_positive_or_none(messy_folder) -> None:
    assert len(list_images(messy_folder, None)) == len(list_images(messy_folder, 10_000))
    for wrong in (0, -1):
        with pytest.raises(ValueError, match="first_n"):
            list_images(messy_folder, wrong)


def test_tiles_split_each_photo_into_distinct_tiles_of_the_rescaled_photo(tmp_path) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((120, 200, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray((rng.random((90, 90, 3)) * 255).astype(np.uint8)).save(tmp_path / "b.png")
    tiles = Tiles(scale=60, per_image=3)
    images = expand_tiles(list_images(tmp_path, None), tiles.per_image)
    assert [i.image_id for i in images] == ["a_t0", "a_t1", "a_t2", "b_t0", "b_t1", "b_t2"]
    loaded, skipped = load_all(images, size=20, mode="tiles", tiles=tiles)
    assert not skipped and all(t.shape == (1, 3, 20, 20) for _, t in loaded)
    whole = resize_short_side(load_image(tmp_path / "a.png"), 60)  # 60 × 100: a 3 × 5 grid of 20-px tiles
    for (item, tile), (top, left) in zip(loaded[:3], tile_boxes(60, 100, 20, 3)):
        assert torch.equal(tile, whole[..., top : top + 20, left : left + 20])
    assert tile_boxes(60, 100, 20, 3) == [(0, 0), (20, 40), (40, 80)]  # first, middle, last of the grid
    assert not torch.equal(loaded[0][1], loaded[1][1])


def test_too_many_tiles_for_a_photo_is_a_clear_error(tmp_path) -> None:
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="holds 4 tiles"):
        prepare(tmp_path / "a.png", 20, "tiles", tile=0, tiles=Tiles(scale=40, per_image=5))


def test_near_constant_tiles_are_skipped_and_counted(tmp_path) -> None:
    page = np.full((60, 120, 3), 255, np.uint8)
    page[:, 60:] = (np.random.default_rng(0).random((60, 60, 3)) * 255).astype(np.uint8)  # text on the right half
    Image.fromarray(page).save(tmp_path / "page.png")
    tiles = Tiles(scale=60, per_image=4, min_std=0.02)
    loaded, skipped = load_all(expand_tiles(list_images(tmp_path, None), 4), size=30, mode="tiles", tiles=tiles)
    assert [item.image_id for item, _ in loaded] == ["page_t1", "page_t3"]  # grid cells 2 and 7: the right half
    assert [item.image_id for item, _ in skipped] == ["page_t0", "page_t2"]
    assert all("near-constant" in reason for _, reason in skipped)


def test_files_sharing_a_stem_are_distinct_images_and_unique_stems_keep_their_id(tmp_path) -> None:
    """Issue 20, item 1: x.png and x.jpg were one image (one row, the other file's reference)."""
    rng = np.random.default_rng(3)
    for name in ("x.png", "x.jpg", "y.png"):
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / name)
    images = list_images(tmp_path, None)
    assert [(i.image_id, i.path.name) for i in images] == [("x.jpg", "x.jpg"), ("x.png", "x.png"), ("y", "y.png")]
    assert [i.image_id for i in expand_tiles(images, 2)] == ["x.jpg_t0", "x.jpg_t1", "x.png_t0", "x.png_t1", "y_t0",
                                                            "y_t1"]


@pytest.mark.parametrize("names", [("A.png", "a.png"), ("x.png", "x.jpg", "x.png.bmp")])
def test_names_that_would_share_an_output_folder_are_refused(tmp_path, names) -> None:
    for name in names:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name, format="PNG")
    with pytest.raises(DatasetError, match="would share a folder"):
        list_images(tmp_path, None)
