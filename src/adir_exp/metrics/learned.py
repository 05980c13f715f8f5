"""Metrics backed by pretrained networks or priors: LPIPS (lpips package), MUSIQ and NIQE (pyiqa).

Each checks its weight files through :mod:`adir_exp.weights` before building anything, so a missing file
raises :class:`~adir_exp.weights.MissingWeightsError` naming the file and where it goes, instead of the
library attempting a download that cannot succeed offline. The libraries are imported lazily (pyiqa takes
seconds) and only after :func:`~adir_exp.paths.configure_environment`, which fixes the cache locations.
The libraries' networks are built without weights and every file is read here, as tensors only
(:func:`~adir_exp.weights.load_tensors`, ``weights_only=True`` passed explicitly, so even
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` cannot make it unpickle code), with exactly the keys and shapes the network
has: pyiqa unpickles MUSIQ checkpoints with ``weights_only=False``, torchvision its cached backbones, and lpips
loads its linear layers with ``strict=False``, which silently keeps random layers for a file with other keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

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
        linear_file = require(f"lpips-{net}-linear")
        self.weight_files = (backbone_file, linear_file)
        self.name = "lpips" if net == "alex" else f"lpips_{net}"
        import lpips

        with warnings.catch_warnings():  # lpips 0.1.4 still calls torchvision with the deprecated pretrained=
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            # Neither file is read by lpips: pnet_rand skips torchvision's loader (weights_only=False), pretrained=False
            # lpips' own (strict=False); both are loaded below.
            self.model = lpips.LPIPS(pretrained=False, net=net, version="0.1", pnet_rand=True, verbose=False)
        load_torchvision_features(self.model.net, backbone_file, "LPIPS")
        linear_layers = nn.ModuleDict({f"lin{index}": layer for index, layer in enumerate(self.model.lins)})
        load_exactly(linear_layers, tensor_dict(linear_file), linear_file, f"LPIPS v0.1 linear layers for {net}")
        self.model = self.model.eval().to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return self.model(pred, target, normalize=True)


def tensor_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A weight file's named tensors, read as tensors only; a file holding one bare tensor or a list is refused."""
    state = load_tensors(path)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a dict of named tensors")
    return state


def load_exactly(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    """Load ``state`` into ``module`` only if it holds exactly the module's tensors with their shapes."""
    check_exactly(module.state_dict(), state, path, what)
    module.load_state_dict(state)


def check_exactly(expected: Mapping[str, torch.Tensor], state: Mapping[str, object], path: Path, what: str) -> None:
    """One line naming the file unless ``state`` has exactly ``expected``'s keys and shapes (``load_state_dict``
    lists every key over many lines, and lpips' ``strict=False`` says nothing at all)."""
    problems = []
    if missing := [key for key in expected if key not in state]:
        problems.append(f"missing {_some(missing)}")
    if unexpected := [key for key in state if key not in expected]:
        problems.append(f"unexpected {_some(unexpected)}")
    if reshaped := [
        f"{key} {tuple(getattr(state[key], 'shape', ()))} (expected {tuple(tensor.shape)})"
        for key, tensor in expected.items()
        if key in state and (not isinstance(state[key], torch.Tensor) or state[key].shape != tensor.shape)
    ]:
        problems.append(f"wrong shape {_some(reshaped)}")
    if problems:
        raise CheckpointError(f"{path} does not hold {what}: {'; '.join(problems)}")


def _some(items: list[str], shown: int = 4) -> str:
    return ", ".join(items[:shown]) + (f", ... ({len(items)} in all)" if len(items) > shown else "")


def load_torchvision_features(net: nn.Module, path: Path, what: str) -> None:
    """torchvision ``features.<i>.*`` weights into ``net``, whose children (lpips' slices, DISTS' stages) keep
    torchvision's layer indices: ``slice1.0.weight`` is ``features.0.weight``. The file's classifier is ignored."""
    state = tensor_dict(path)
    source_of = {name: f"features.{name.split('.', 1)[1]}" for name in net.state_dict()}
    expected = {source_of[name]: tensor for name, tensor in net.state_dict().items()}
    features = {key: value for key, value in state.items() if key.startswith("features.")}
    check_exactly(expected, features, path, f"the torchvision backbone {what} needs")
    net.load_state_dict({name: state[source] for name, source in source_of.items()})


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
        self.weight_files = (checkpoint,)
        self.name = f"musiq_{dataset}"
        from pyiqa.archs.arch_util import clean_state_dict
        from pyiqa.archs.musiq_arch import MUSIQ as PyiqaMUSIQ

        # Not pretrained_model_path=: pyiqa unpickles it with weights_only=False. pretrained=False also skips
        # pyiqa's downloader, and with it pyiqa's own num_class choice for AVA.
        self.model = PyiqaMUSIQ(pretrained=False, num_class=self.CLASSES[dataset])
        state = clean_state_dict(tensor_dict(checkpoint))
        load_exactly(self.model, state, checkpoint, f"a pyiqa MUSIQ-{dataset} model")
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
        check_niqe_prior(prior)
        self.weight_files = (prior,)
        self.crop_border = crop_border
        from pyiqa.archs.niqe_arch import NIQE as PyiqaNIQE

        self.model = PyiqaNIQE(crop_border=crop_border, pretrained_model_path=str(prior)).to(self.device)

    def compute(self, pred: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        height, width = (side - 2 * self.crop_border for side in pred.shape[-2:])
        if min(height, width) < self.BLOCK:
            raise ValueError(f"NIQE needs at least {self.BLOCK}x{self.BLOCK} pixels, got {height}x{width}")
        return self.model(pred)


NIQE_FEATURES = 36  # 18 features at each of two scales


def check_niqe_prior(path: Path) -> None:
    """pyiqa reads the prior with ``scipy.io.loadmat``, whose errors ("Unknown mat file type, version 103, 101")
    name no file: read it first and say which file is wrong, and how."""
    import scipy.io

    try:
        params = scipy.io.loadmat(path)
    except Exception as error:  # any parse failure means the same thing: this is not a MATLAB file
        raise CheckpointError(f"{path} is not a MATLAB .mat file holding NIQE's prior: {error}") from error
    shapes = {key: np.shape(params[key]) for key in ("mu_prisparam", "cov_prisparam") if key in params}
    covariance = (NIQE_FEATURES, NIQE_FEATURES)
    if np.prod(shapes.get("mu_prisparam", 0)) != NIQE_FEATURES or shapes.get("cov_prisparam") != covariance:
        raise CheckpointError(
            f"{path} does not hold NIQE's prior: expected mu_prisparam ({NIQE_FEATURES} values) and cov_prisparam "
            f"(36x36), found {shapes or 'neither'}"
        )
