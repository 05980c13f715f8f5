"""Image-quality metrics with one interface (``metric(pred, target=None) -> (B,)``) and a suite to run them.

See docs/metrics.md for the conventions, the weight files and the calibration against pyiqa.
"""

from adir_exp.metrics.base import Metric
from adir_exp.metrics.dists import DISTS
from adir_exp.metrics.fidelity import PSNR, SSIM
from adir_exp.metrics.learned import LPIPS, MUSIQ, NIQE
from adir_exp.metrics.suite import (
    MetricNotApplicableWarning,
    MetricSuite,
    MetricUnavailableWarning,
)

__all__ = [
    "DISTS", "LPIPS", "MUSIQ", "NIQE", "PSNR", "SSIM",
    "Metric", "MetricNotApplicableWarning", "MetricSuite", "MetricUnavailableWarning",
]  # fmt: skip
