"""The shared metric contract, clear missing-weight errors, and the suite's strict/skip behaviour."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.cli.config import CONF_DIR
from adir_exp.metrics import (
    DISTS,
    LPIPS,
    MUSIQ,
    NIQE,
    PSNR,
    SSIM,
    Metric,
    MetricSuite,
    MetricUnavailableWarning,
)
from adir_exp.weights import MissingWeightsError


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (torch.rand(3, 8, 8), ValueError, r"\(B, 3, H, W\)"),
        (torch.rand(1, 1, 8, 8), ValueError, r"\(B, 3, H, W\)"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), TypeError, "floating-point"),
        (torch.rand(1, 3, 8, 8) * 255, ValueError, r"\[0, 1\]"),
        (torch.rand(1, 3, 8, 8) - 0.5, ValueError, r"\[0, 1\]"),
    ],
)
def test_inputs_the_metrics_would_misread_are_rejected(image: torch.Tensor, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        PSNR()(image, image)


def test_full_reference_metrics_need_a_matching_target() -> None:
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="full-reference"):
        SSIM()(x)
    with pytest.raises(ValueError, match="differ"):
        SSIM()(x, x[:1])


def test_metric_attributes() -> None:
    assert (PSNR.name, PSNR.higher_is_better, PSNR.requires_reference) == ("psnr", True, True)
    assert (SSIM.name, SSIM.higher_is_better, SSIM.requires_reference) == ("ssim", True, True)
    assert (LPIPS.higher_is_better, LPIPS.requires_reference) == (False, True)
    assert (DISTS.name, DISTS.higher_is_better, DISTS.requires_reference) == ("dists", False, True)
    assert (MUSIQ.higher_is_better, MUSIQ.requires_reference) == (True, False)
    assert (NIQE.name, NIQE.higher_is_better, NIQE.requires_reference) == ("niqe", False, False)


@pytest.mark.parametrize(
    ("build", "file_name", "place"),
    [
        (lambda: LPIPS(net="alex"), "alexnet-owt-7be5be79.pth", "torch/hub/checkpoints"),
        (lambda: LPIPS(net="vgg"), "vgg16-397923af.pth", "torch/hub/checkpoints"),
        (lambda: NIQE(), "niqe_modelparameters.mat", "torch/hub/pyiqa"),
        (lambda: DISTS(), "vgg16-397923af.pth", "torch/hub/checkpoints"),
        (lambda: MUSIQ(dataset="ava"), "musiq_ava_ckpt-e8d3f067.pth", "weights"),
        (lambda: MUSIQ(dataset="koniq"), "musiq_koniq_ckpt-e95806b9.pth", "weights"),
    ],
)
def test_missing_weights_raise_an_error_naming_file_and_place(
    build: Callable[[], Metric], file_name: str, place: str, isolated_home: Path
) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        build()
    assert str(isolated_home / place / file_name) in str(caught.value)


def test_suite_skips_metrics_without_weights_and_says_why() -> None:
    with pytest.warns(MetricUnavailableWarning, match="alexnet-owt-7be5be79.pth"):
        suite = MetricSuite({"psnr": PSNR(), "lpips": functools.partial(LPIPS, net="alex")}, on_missing="skip")
    assert list(suite.metrics) == ["psnr"] and "alexnet-owt-7be5be79.pth" in suite.skipped["lpips"]
    x = torch.rand(2, 3, 16, 16)
    scores = suite(x, x)
    assert list(scores) == ["psnr"] and scores["psnr"].shape == (2,)
    assert suite.higher_is_better == {"psnr": True}


def test_strict_suite_raises_the_missing_weights_error() -> None:
    with pytest.raises(MissingWeightsError, match="niqe_modelparameters.mat"):
        MetricSuite({"niqe": NIQE}, on_missing="strict")
    with pytest.raises(ValueError, match="on_missing"):
        MetricSuite({}, on_missing="ignore")  # type: ignore[arg-type]


def test_suite_needs_a_target_for_full_reference_metrics() -> None:
    suite = MetricSuite({"psnr": PSNR})
    with pytest.raises(ValueError, match=r"\['psnr'\]"):
        suite(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize(
    ("config", "built", "skipped"),
    [
        ("default", ["psnr", "ssim"], ["lpips", "lpips_vgg", "dists", "niqe"]),
        ("paper", ["psnr", "ssim"], ["lpips", "lpips_vgg", "dists", "niqe", "musiq_ava", "musiq_koniq"]),
    ],
)
def test_hydra_configs_build_suites_that_skip_offline(config: str, built: list[str], skipped: list[str]) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        node = compose(config_name="run", overrides=[f"metrics={config}"]).metrics
    with pytest.warns(MetricUnavailableWarning):
        suite = instantiate(node)
    assert isinstance(suite, MetricSuite)
    assert list(suite.metrics) == built and list(suite.skipped) == skipped


def test_the_offline_config_is_strict() -> None:
    with pytest.raises(InstantiationException) as caught:
        instantiate(OmegaConf.load(CONF_DIR / "metrics" / "offline.yaml"))
    assert isinstance(caught.value.__cause__, MissingWeightsError)


class OneFileMetric(Metric):
    """A metric whose scores depend on one weight file."""

    name = "one_file"
    higher_is_better = True
    requires_reference = False

    def __init__(self, path: Path, device: str = "cpu") -> None:
        super().__init__(device)
        self.weight_files = (path,)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return pred.new_zeros(pred.shape[0])


def test_the_suite_fingerprint_is_the_content_of_its_weight_files(tmp_path: Path) -> None:
    path, copy = tmp_path / "weights.pth", tmp_path / "elsewhere" / "weights.pth"
    path.write_bytes(b"first")
    copy.parent.mkdir()
    copy.write_bytes(b"first")
    suite = MetricSuite({"psnr": PSNR(), "one_file": OneFileMetric(path)})
    fingerprint = suite.fingerprint()
    assert suite.fingerprint() == fingerprint  # the same files, the same rows
    assert MetricSuite({"psnr": PSNR(), "one_file": OneFileMetric(copy)}).fingerprint() == fingerprint  # not the place
    assert MetricSuite({"psnr": PSNR()}).fingerprint() != fingerprint
    path.write_bytes(b"second")  # replaced in place
    assert suite.fingerprint() != fingerprint
