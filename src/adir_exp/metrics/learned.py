"""Metrics backed by pretrained networks or priors: LPIPS (lpips package), MUSIQ and NIQE (pyiqa).

Each checks its weight files through :mod:`adir_exp.weights` before building anything, so a missing file
raises :class:`~adir_exp.weights.MissingWeightsError` naming the file and where it goes, instead of the
library attempting a download that cannot succeed offline. The libraries are imported lazily (pyiqa takes
seconds) and only after :func:`~adir_exp.paths.configure_environment`, which fixes the cache locations.
Files the libraries would unpickle with ``weights_only=False`` (pyiqa's MUSIQ checkpoints, torchvision's cached
backbones) are loaded here with :func:`~adir_exp.weights.load_tensors` instead: a checkpoint cannot run code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar, Literal

import torch

from adir_exp.metrics.base import Metric
from adir_exp.paths import configure_environment
from adir_exp.weights import CheckpointError, load_tensors, require


class LPIPS(Metric):
    """LPIPS v0.1 (Zhang et al. 2018) from the reference ``lpips`` package: ImageNet backbone + the linear
    layers calibrated on BAPPS. ``net="alex"`` is the "traditional LPIPS" the ADIR paper reports;
    ``net="vgg"`` is the variant often used as a loss. Lower is better; inputs are mapped to [-1, 1] inside.
    """

    higher_is_better = False
    requires_reference = True

    def __init__(self, net: Literal["alex", "vgg"] = "alex", device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        backbone = {"alex": "torchvision-alexnet", "vgg": "torchvision-vgg16"}[net]
        configure_environment()
        backbone_file = require(backbone)
        require(f"lpips-{net}-linear")
        self.name = "lpips" if net == "alex" else f"lpips_{net}"
        import lpips

        with warnings.catch_warnings():  # lpips 0.1.4 still calls torchvision with the deprecated pretrained=
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            # pnet_rand: torchvision would unpickle its cached backbone with weights_only=False; loaded below
            self.model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
        _load_backbone(self.model.net, backbone_file)
        self.model = self.model.eval().to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self.model(pred, target, normalize=True)


def _load_backbone(net: torch.nn.Module, path: Path) -> None:
    """torchvision ``features.<i>.*`` weights into lpips' backbone, whose slices keep torchvision's indices."""
    state = load_tensors(path)
    names = {name: f"features.{name.split('.', 1)[1]}" for name in net.state_dict()}  # slice1.0.weight -> features.0
    missing = sorted(source for source in names.values() if source not in state)
    if missing:
        raise CheckpointError(f"{path} is not a torchvision backbone for LPIPS: no {', '.join(missing[:4])}")
    net.load_state_dict({name: state[source] for name, source in names.items()})


class MUSIQ(Metric):
    """MUSIQ (Ke et al. 2021), pyiqa's port of the official checkpoints. ``dataset="ava"`` predicts the AVA
    aesthetic score (1-10), ``dataset="koniq"`` the KonIQ-10k quality MOS (about 0-100). No reference;
    higher is better. Images are scored at their native resolution plus pyiqa's 224/384 rescales.
    """

    higher_is_better = True
    requires_reference = False
    CLASSES: ClassVar[dict[str, int]] = {"ava": 10, "koniq": 1}  # AVA checkpoints predict a 10-bin score distribution

    def __init__(self, dataset: Literal["ava", "koniq"] = "koniq", device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        configure_environment()
        checkpoint = require(f"musiq-{dataset}")
        self.name = f"musiq_{dataset}"
        from pyiqa.archs.arch_util import clean_state_dict
        from pyiqa.archs.musiq_arch import MUSIQ as PyiqaMUSIQ

        # Not pretrained_model_path=: pyiqa unpickles it with weights_only=False. pretrained=False also skips
        # pyiqa's downloader, and with it pyiqa's own num_class choice for AVA.
        self.model = PyiqaMUSIQ(pretrained=False, num_class=self.CLASSES[dataset])
        self.model.load_state_dict(clean_state_dict(load_tensors(checkpoint)))
        self.model = self.model.eval().to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self.model(pred)


class NIQE(Metric):
    """NIQE (Mittal et al. 2013) via pyiqa, with the pristine-image prior provisioned from basicsr.

    pyiqa's convention, which its published calibration uses: luma of YIQ, quantised to 8 bits, 96x96 blocks
    at two scales. Images must be at least 96x96 after ``crop_border``. No reference; lower is better.
    """

    name = "niqe"
    higher_is_better = False
    requires_reference = False
    BLOCK = 96

    def __init__(self, crop_border: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(device)
        configure_environment()
        prior = require("niqe-prior")
        self.crop_border = crop_border
        from pyiqa.archs.niqe_arch import NIQE as PyiqaNIQE

        self.model = PyiqaNIQE(crop_border=crop_border, pretrained_model_path=str(prior)).to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = (side - 2 * self.crop_border for side in pred.shape[-2:])
        if min(height, width) < self.BLOCK:
            raise ValueError(f"NIQE needs at least {self.BLOCK}x{self.BLOCK} pixels, got {height}x{width}")
        return self.model(pred)
