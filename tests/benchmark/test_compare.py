"""Paired bootstrap comparisons: known differences are found, noise is not, photos cluster their tiles."""

from __future__ import annotations

import numpy as np
import pytest

from adir_exp.benchmark.compare import Difference, method_means, paired_bootstrap, photo_of, plot_differences


def rows_with(shift: float, noise: float, n: int = 40, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    base = rng.normal(25.0, 3.0, n)  # image difficulty varies a lot; the paired design removes it
    rows = []
    for i, value in enumerate(base):
        image = f"photo{i // 5}_t{i % 5}"
        rows.append({"method": "a", "image": image, "seed": 0, "seconds": 2.0, "psnr": value + shift + rng.normal(0, noise)})
        rows.append({"method": "b", "image": image, "seed": 0, "seconds": 1.0, "psnr": value})
    return rows


def test_a_real_paired_difference_is_found_despite_large_image_variance() -> None:
    d = paired_bootstrap(rows_with(shift=0.5, noise=0.2), "a", "b", "psnr", resamples=2000)
    assert d.n == 40 and d.low < 0.5 < d.high and d.low > 0 and d.verdict == "better"
    worse = paired_bootstrap(rows_with(shift=0.5, noise=0.2), "a", "b", "psnr", resamples=2000)
    assert Difference("a", "b", "lpips", 40, worse.mean, worse.low, worse.high).verdict == "worse"


def test_no_difference_gives_a_ci_around_zero() -> None:
    d = paired_bootstrap(rows_with(shift=0.0, noise=1.0), "a", "b", "psnr", resamples=2000)
    assert d.low < 0 < d.high and d.verdict == "no clear difference"


def test_resampling_photos_widens_the_ci_when_tiles_share_a_photo_effect() -> None:
    rows = rows_with(shift=0.0, noise=0.05)
    for row in rows:  # a per-photo offset: tiles of one photo move together
        if row["method"] == "a":
            row["psnr"] += {0: 1.0, 1: -1.0}.get(int(row["image"][5]) % 2, 0.0)
    tiles = paired_bootstrap(rows, "a", "b", "psnr", resamples=2000)
    photos = paired_bootstrap(rows, "a", "b", "psnr", resamples=2000, group=photo_of)
    assert photos.high - photos.low > 1.5 * (tiles.high - tiles.low)
    assert photo_of("photo3_t4") == "photo3" and photo_of("0801") == "0801" and photo_of("my_tree") == "my_tree"


def test_unpaired_methods_are_an_error_and_means_count_images(tmp_path) -> None:
    rows = rows_with(0.1, 0.1)
    with pytest.raises(ValueError, match="both"):
        paired_bootstrap(rows, "a", "missing", "psnr")
    means = method_means(rows, ["psnr"])
    assert means["a"]["n"] == 40 and means["a"]["seconds"] == 2.0
    path = plot_differences([("t", paired_bootstrap(rows, "a", "b", "psnr", resamples=100))], ["psnr"], tmp_path / "d.png")
    assert path.stat().st_size > 1000
