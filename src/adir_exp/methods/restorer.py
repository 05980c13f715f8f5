"""The paper's supervised baselines (SwinIR, Real-ESRGAN, IPT for SR; Restormer, MPRNet, M3SNet for deblurring) run
on user-supplied checkpoints through spandrel, the loader chaiNNer and ComfyUI use.

Each network gets y as the paper's baselines did: the bicubic-downsampled low-resolution image for SR, the blurred
(noisy) image for deblurring, on [0, 1] in RGB order. spandrel pads the input (reflect) to the architecture's size
multiple (SwinIR's window, the U-Nets' 8 or 16) and crops the output back; networks that work on [0, 255] or
subtract a mean (SwinIR, IPT) do so inside spandrel's model. docs/baselines.md lists each network's convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adir_exp.methods.base import Estimate, Method
from adir_exp.operators import BicubicDownsample, BoxBlur, GaussianBlur
from adir_exp.weights import CheckpointError, load_tensors, require
from adir_exp.weights.digest import file_sha256

if TYPE_CHECKING:
    from adir_exp.operators import Physics

INSTALL_HINT = "install the optional extra: pip install -e '.[restorers]'"


def task_scale(physics: Physics) -> int:
    """The factor a restorer must enlarge y by: the SR factor, or 1 for deblurring (the paper's restorer tasks)."""
    operator = physics.operator
    if isinstance(operator, BicubicDownsample):
        return operator.factor
    if isinstance(operator, (BoxBlur, GaussianBlur)):
        return 1
    name = type(operator).__name__
    raise ValueError(f"supervised restorers run on super-resolution and deblurring tasks, not {name}")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors, never unpickled beyond tensors: safetensors, or ``torch.load(weights_only=True)``;
    wrappers such as ``{"params_ema": ...}`` or a ``module.`` prefix are removed by spandrel's canonicaliser."""
    from spandrel import canonicalize_state_dict

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = load_tensors(path)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict")
    return canonicalize_state_dict(dict(state))


def load_restorer(path: Path, architecture: str, scale: int) -> Any:
    """spandrel's ``ImageModelDescriptor`` for the checkpoint at ``path``, checked to be ``architecture`` at
    ``scale``."""
    try:
        import spandrel
    except ImportError as error:
        raise ValueError(f"method needs spandrel: {INSTALL_HINT}") from error
    try:
        import spandrel_extra_arches  # Restormer, MPRNet, M3SNet (non-commercial licences, see docs/baselines.md)
    except ImportError:
        spandrel_extra_arches = None
    if spandrel_extra_arches is not None:
        spandrel_extra_arches.install(ignore_duplicates=True)
    try:
        model = spandrel.ModelLoader().load_from_state_dict(read_state_dict(path))
    except spandrel.UnsupportedModelError as error:
        extra = "" if spandrel_extra_arches else " (Restormer, MPRNet and M3SNet need spandrel-extra-arches)"
        raise ValueError(f"{path}: spandrel recognises no architecture in this checkpoint{extra}") from error
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise ValueError(f"{path}: a {model.architecture.id} checkpoint is not a single-image restorer")
    if model.architecture.id != architecture:
        raise ValueError(f"{path} is a {model.architecture.id} checkpoint, the method expects {architecture}")
    if model.scale != scale:
        raise ValueError(f"{path}: the {architecture} checkpoint enlarges ×{model.scale}, the task needs ×{scale}")
    return model.eval()


class SupervisedRestorer(Method):
    """A feed-forward restoration network of the paper's tables, x̂ = f(y).

    ``architecture`` is spandrel's id (``SwinIR``, ``ESRGAN`` for RRDBNet/Real-ESRGAN, ``IPT``, ``Restormer``,
    ``MPRNet``, ``M3SNet``); ``weights`` maps the factor of the task (1: deblurring) to the registry key of the
    checkpoint for it (``adir-weights list`` shows where each file goes). The checkpoint is read on the first check
    and kept, one per factor.
    """

    uses_prior = False

    def __init__(self, architecture: str, weights: Mapping[Any, str]) -> None:
        if not weights:
            raise ValueError(f"{architecture}: give the checkpoint of at least one task factor in `weights`")
        self.architecture = architecture
        self.weights = {int(factor): key for factor, key in weights.items()}
        self._models: dict[int, Any] = {}
        self._digests: dict[str, str] = {}

    def model_for(self, physics: Physics) -> Any:
        scale = task_scale(physics)
        if scale not in self._models:
            if scale not in self.weights:
                raise ValueError(
                    f"{self.architecture} has no checkpoint for ×{scale} (configured: "
                    f"{', '.join(f'×{s}' for s in sorted(self.weights))}); the paper prints no such row"
                )
            path = require(self.weights[scale])
            self._models[scale] = load_restorer(path, self.architecture, scale)
            self._digests[self.weights[scale]] = file_sha256(path)
        return self._models[scale]

    def check(self, prior, physics: Physics, retriever=None) -> None:
        self.model_for(physics)

    @property
    def provenance(self) -> dict[str, str]:
        """The checked checkpoints' SHA-256: a replaced file makes new rows, never reuses old ones."""
        return dict(self._digests)

    @torch.no_grad()
    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        model = self.model_for(problem.physics).to(problem.device)
        y = problem.y_in_unit_range().clamp(0.0, 1.0)
        # spandrel's descriptors take one image at a time.
        restored = torch.cat([model(image[None].float()) for image in y])
        if tuple(restored.shape) != problem.image_shape:
            raise ValueError(f"{self.architecture} returned {tuple(restored.shape)}, expected {problem.image_shape}")
        return Estimate(restored.clamp(0.0, 1.0).cpu())
