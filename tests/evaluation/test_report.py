"""Paired bootstrap comparisons: known differences are found, noise is not, photos cluster their tiles."""

from __future__ import annotations

import numpy as np
import pytest

from adir_exp.evaluation.report import (
    Difference,
    method_means,
    paired_bootstrap,
    photo_of,
    plot_differences,
)


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


def test_report_says_not_measured_where_a_metric_is_missing_and_refuses_an_empty_folder(tmp_path) -> None:
    from adir_exp.evaluation.report import write_report
    from adir_exp.evaluation.results import ResultsError, ResultStore

    store = ResultStore(tmp_path / "results")
    for i in range(4):
        store.append({"method": "bicubic", "image": f"p_t{i}", "seed": 0, "key": "a", "seconds": 0.0, "psnr": 20.0 + i})
        store.append({"method": "gd", "image": f"p_t{i}", "seed": 0, "key": "b", "seconds": 1.0, "psnr": 21.0 + i})
    text = write_report([tmp_path / "results"], tmp_path / "out", ["lpips", "psnr"], ["gd:BASE"], resamples=200)
    assert "| gd − bicubic | lpips | 0 | — | — | — | not measured |" in text
    assert "| gd − bicubic | psnr | 4 | +1.0000 |" in text
    with pytest.raises(ResultsError):
        write_report([tmp_path / "missing"], tmp_path / "out2", ["psnr"], ["gd:BASE"])


def test_retrieval_precision_is_the_share_of_adaptation_images_from_the_domain() -> None:
    from adir_exp.evaluation.report import retrieval_precision

    rows = [{"method": "adir_knn", "image": "a", "adaptation_images": ["astronomy/x.png", "natural/y.png"]},
            {"method": "adir_knn", "image": "b", "adaptation_images": ["astronomy/z.png", "astronomy/w.png"]},
            {"method": "adir_knn@50", "image": "b", "adaptation_images": ["natural/v.png"]},
            {"method": "gd", "image": "a"}]  # fmt: skip
    ((method, (n, mean, low, high)),) = retrieval_precision(rows, "astronomy", resamples=500).items()
    assert (method, n, mean) == ("adir_knn", 2, 0.75) and 0.5 <= low <= mean <= high <= 1.0


@pytest.mark.parametrize("metric", ["lpips_vgg", "dists"])
def test_the_metrics_the_adaptation_never_trained_on_are_reported_lower_is_better(tmp_path, metric) -> None:
    from adir_exp.evaluation.report import write_report
    from adir_exp.evaluation.results import ResultStore

    store = ResultStore(tmp_path / "results")
    for i in range(6):
        store.append({"method": "gd", "image": f"p{i}", "seed": 0, "key": "a", "seconds": 1.0, metric: 0.3 + 0.01 * i})
        store.append({"method": "adir_knn", "image": f"p{i}", "seed": 0, "key": "b", "seconds": 2.0,
                      metric: 0.2 + 0.01 * i})
    text = write_report([tmp_path / "results"], tmp_path / "out", [metric], ["adir_knn:gd"], resamples=200)
    assert f"| adir_knn − gd | {metric} | 6 | -0.1000 |" in text and text.rstrip().endswith("| better |")


def test_a_metric_of_unknown_direction_is_refused_before_any_work(tmp_path) -> None:
    from adir_exp.evaluation.report import write_report
    from adir_exp.evaluation.results import ResultsError

    with pytest.raises(ResultsError, match="unknown metric.*lpips_alex.*known: psnr"):
        write_report([tmp_path / "results"], tmp_path / "out", ["lpips", "lpips_alex"], ["gd:BASE"])
    assert not (tmp_path / "out").exists()


def test_settings_of_one_method_are_named_by_rename(tmp_path) -> None:
    """Two banks (two keys of adir_bank) in one directory: labelled by key, then named for the report."""
    from adir_exp.evaluation.report import write_report
    from adir_exp.evaluation.results import ResultStore

    store = ResultStore(tmp_path / "results")
    for i in range(4):
        store.append({"method": "gd", "image": f"p_t{i}", "seed": 0, "key": "g", "seconds": 1.0, "psnr": 20.0 + i})
        for key, gain in (("aaaaaaaa11", 1.0), ("bbbbbbbb22", 2.0)):
            store.append({"method": "adir_bank", "image": f"p_t{i}", "seed": 0, "key": key, "seconds": 1.0,
                          "psnr": 20.0 + i + gain})
    text = write_report([tmp_path / "results"], tmp_path / "out", ["psnr"],
                        ["bank_c3:gd", "bank_c8:gd"], resamples=200,
                        renames={"adir_bank@aaaaaaaa": "bank_c3", "adir_bank@bbbbbbbb": "bank_c8"})
    assert "| bank_c3 − gd | psnr | 4 | +1.0000 |" in text and "| bank_c8 − gd | psnr | 4 | +2.0000 |" in text
