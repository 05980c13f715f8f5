"""The leakage guard on tiles: a test image planted in the collection, a rescaled crop of it and another piece of
its source are all dropped; unrelated photos are not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.leakage import LeakageGuard, best_match, content_digest
from adir_exp.retrieval.query import Retriever

GUARD = LeakageGuard()
OTHERS = ("chelsea", "coffee", "rocket", "camera", "immunohistochemistry", "hubble_deep_field")


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)


@pytest.fixture(scope="module")
def source() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((384, 384), Image.BICUBIC)


def _tile(image: Image.Image, top: int = 150, left: int = 180) -> torch.Tensor:
    return _tensor(image)[:, top:top + 96, left:left + 96]


def _rescaled_crop(image: Image.Image, factor: float = 0.7) -> Image.Image:
    crop = image.crop((120, 110, 320, 310))  # 200 px around the tile
    return crop.resize((round(200 * factor), round(200 * factor)), Image.BICUBIC)


def test_a_tile_is_found_in_its_source_and_in_a_rescaled_crop_but_not_in_other_photos(source):
    tile = _tile(source)
    assert best_match(tile, _tensor(source), GUARD.scale_grid) > 0.9
    for factor in (0.55, 0.7, 1.3, 1.8):
        assert best_match(tile, _tensor(_rescaled_crop(source, factor)), GUARD.scale_grid) >= GUARD.patch_threshold
    for name in OTHERS:
        other = _tensor(Image.fromarray(getattr(data, name)()))
        assert best_match(tile, other, GUARD.scale_grid) < GUARD.patch_threshold, name
    flat = torch.full((3, 96, 96), 0.5)
    assert best_match(flat, _tensor(source), GUARD.scale_grid) == 0.0  # a flat tile matches nothing


@pytest.fixture(scope="module")
def planted(tmp_path_factory, source, effnet_128, fast_embed) -> dict:
    """A collection of unrelated photos plus the test image, a rescaled crop of it and another piece of the
    same source (a different crop: its own pixels, but the manifest's group says it shares the source)."""
    root = tmp_path_factory.mktemp("planted")
    (root / "collection").mkdir()
    (root / "test").mkdir()
    for name in OTHERS:
        Image.fromarray(getattr(data, name)()).convert("RGB").save(root / "collection" / f"{name}.png")
    test_file = root / "test" / "astronaut.png"
    source.save(test_file)
    (root / "collection" / "planted_copy.png").write_bytes(test_file.read_bytes())
    _rescaled_crop(source).save(root / "collection" / "planted_crop.png")
    source.crop((0, 0, 150, 150)).resize((300, 300), Image.BICUBIC).save(root / "collection" / "sibling_piece.png")
    images = [{"path": f"collection/{name}.png", "group": f"g:{name}"} for name in OTHERS]
    images += [{"path": "test/astronaut.png", "group": "g:astronaut"},
               {"path": "collection/sibling_piece.png", "group": "g:astronaut"}]
    (root / "manifest.json").write_text(json.dumps({"images": images}))
    build_index(root / "collection", root / "index", effnet_128, embed=fast_embed)
    return {"root": root, "test_file": test_file}


def test_the_planted_test_image_its_rescaled_crop_and_its_sibling_piece_are_never_retrieved(planted, source,
                                                                                            effnet_128):
    root = planted["root"]
    guard = LeakageGuard(manifest=str(root / "manifest.json"))
    retriever = Retriever(root / "index", effnet_128, k=len(OTHERS), leakage_guard=guard)
    tile = _tile(source)
    y = F.avg_pool2d(tile[None], 4)
    unguarded = {n.id for n in retriever.query_image(y, k=len(OTHERS) + 3)}
    assert {"planted_copy.png", "planted_crop.png", "sibling_piece.png"} <= unguarded
    result = retriever.query_image(y, ground_truth=tile[None], source=content_digest(planted["test_file"]))
    assert sorted(n.id for n in result) == sorted(f"{name}.png" for name in OTHERS)
    reasons = {n.id: n.exclusion.reason for n in result.excluded}
    assert reasons == {"planted_copy.png": "source", "planted_crop.png": "patch", "sibling_piece.png": "source"}


def test_without_the_source_file_the_pixels_still_catch_the_copy_and_the_crop(planted, source, effnet_128):
    retriever = Retriever(planted["root"] / "index", effnet_128, k=len(OTHERS) + 1)
    tile = _tile(source)
    result = retriever.query_image(F.avg_pool2d(tile[None], 4), ground_truth=tile[None])
    reasons = {n.id: n.exclusion.reason for n in result.excluded}
    assert reasons == {"planted_copy.png": "patch", "planted_crop.png": "patch"}
    assert "sibling_piece.png" in {n.id for n in result}  # other pixels, no manifest: only the split keeps it out


def test_random_draws_are_guarded_too(planted, source, effnet_128):
    guard = LeakageGuard(manifest=str(planted["root"] / "manifest.json"))
    retriever = Retriever(planted["root"] / "index", effnet_128, k=len(OTHERS), leakage_guard=guard)
    tile = _tile(source)
    drawn = retriever.query_random(F.avg_pool2d(tile[None], 4), seed=3, ground_truth=tile[None],
                                   source=content_digest(planted["test_file"]))
    assert sorted(n.id for n in drawn) == sorted(f"{name}.png" for name in OTHERS)


def test_a_smooth_tile_does_not_match_an_unrelated_smooth_image():
    """Plain NCC finds a gradient in any gradient (0.9+ against unrelated photos in the study); the detail stage
    does not."""
    rows, cols = torch.meshgrid(torch.linspace(0, 1, 300), torch.linspace(0, 1, 300), indexing="ij")
    other = (0.3 + 0.4 * cols + 0.02 * torch.randn(300, 300, generator=torch.Generator().manual_seed(2)))
    tile = (0.2 + 0.3 * torch.linspace(0, 1, 96)[None, :] + 0.02 * torch.randn(96, 96,
                                                                               generator=torch.Generator().manual_seed(1)))
    tile, other = tile.clamp(0, 1).expand(3, -1, -1), other.clamp(0, 1).expand(3, -1, -1)
    from adir_exp.retrieval import leakage

    coarse = leakage._correlation(leakage._resized(leakage.luminance(other), 1 / 3),
                                  leakage._normalised(leakage._resized(leakage.luminance(tile), 1 / 3)))
    assert coarse.max() > leakage.COARSE_GATE  # the first stage finds a likely place ...
    assert best_match(tile, other, GUARD.scale_grid) < GUARD.patch_threshold  # ... the detail stage rejects it
