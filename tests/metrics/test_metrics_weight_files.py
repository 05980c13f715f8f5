"""Metric weight files are loaded whole or not at all: exactly the network's keys and shapes, else one line that
names the file (issue 20). Crafted pickles are the security suite's (tests/security/test_metric_loaders.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import scipy.io
import torch

from adir_exp.metrics import DISTS, LPIPS, MUSIQ, NIQE, Metric
from adir_exp.weights import CheckpointError, entry, load_tensors
from tests.security.crafted import put, redirect_lpips_package, stand_in_weights


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stand_ins")
    return {key: stand_in_weights(key, root / f"{key}.pth") for key in ("torchvision-alexnet", "dists-weights")}


@pytest.fixture
def lpips_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_ins: dict[str, Path]) -> Path:
    """The lpips wheel's weight folder as a copy (the registry points there), and a loadable AlexNet backbone."""
    put("torchvision-alexnet", stand_ins["torchvision-alexnet"])
    return redirect_lpips_package(tmp_path / "lpips", monkeypatch)


def refusal(build: Callable[[], Metric]) -> str:
    with pytest.raises(CheckpointError) as refused:
        build()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_lpips_loads_its_linear_layers_from_the_registry_file(lpips_package: Path) -> None:
    """lpips is built with pretrained=False, so these values can only come from our load."""
    layers = LPIPS(net="alex").model.lins
    expected = load_tensors(entry("lpips-alex-linear").path)
    for index, layer in enumerate(layers):
        assert torch.equal(layer.model[1].weight, expected[f"lin{index}.model.1.weight"])


def test_lpips_linear_layers_with_other_keys_are_refused_naming_the_file(lpips_package: Path) -> None:
    """The lpips package's strict=False load kept random layers here: LPIPS 0.054 instead of 1.031, no warning."""
    path = entry("lpips-alex-linear").path
    torch.save({f"lin{index}.weight": torch.rand(1, 64, 1, 1) for index in range(5)}, path)
    message = refusal(lambda: LPIPS(net="alex"))
    assert str(path) in message and "missing lin0.model.1.weight" in message and "unexpected lin0.weight" in message


def test_lpips_linear_layers_of_the_other_backbone_are_refused(lpips_package: Path) -> None:
    path = entry("lpips-alex-linear").path
    path.write_bytes(entry("lpips-vgg-linear").path.read_bytes())
    message = refusal(lambda: LPIPS(net="alex"))
    assert str(path) in message
    assert "wrong shape lin1.model.1.weight (1, 128, 1, 1) (expected (1, 192, 1, 1))" in message


def test_a_backbone_with_a_wrong_shape_is_refused_naming_the_file(lpips_package: Path) -> None:
    state = load_tensors(entry("torchvision-alexnet").path)
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    path = entry("torchvision-alexnet").path
    path.unlink()  # a link to the shared stand-in
    torch.save(state, path)
    message = refusal(lambda: LPIPS(net="alex"))
    assert str(path) in message and "features.3.weight (192, 64, 3, 3) (expected (192, 64, 5, 5))" in message


def test_a_file_holding_one_tensor_is_refused(lpips_package: Path) -> None:
    path = entry("lpips-alex-linear").path
    torch.save(torch.zeros(3), path)
    assert refusal(lambda: LPIPS(net="alex")) == f"{path} holds a Tensor, not a dict of named tensors"


def test_dists_weights_with_other_keys_are_refused_naming_the_file(stand_ins: dict[str, Path]) -> None:
    put("torchvision-vgg16", stand_in_weights("torchvision-vgg16", entry("torchvision-vgg16").path.with_name("vgg")))
    path = entry("dists-weights").path
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "gamma": torch.rand(1, 1475, 1, 1)}, path)
    message = refusal(DISTS)
    assert str(path) in message and "missing beta" in message and "unexpected gamma" in message


def test_a_musiq_checkpoint_with_other_keys_is_one_line_naming_the_file() -> None:
    path = entry("musiq-koniq").path
    path.parent.mkdir(parents=True)
    torch.save({"classifier.weight": torch.zeros(1, 384)}, path)
    message = refusal(lambda: MUSIQ(dataset="koniq"))
    assert str(path) in message and "missing" in message and "unexpected classifier.weight" in message


def test_a_niqe_prior_that_is_no_mat_file_is_one_line_naming_the_file() -> None:
    """scipy's own error is "Unknown mat file type, version 103, 101", with no file name (issue 20, item 8)."""
    path = entry("niqe-prior").path
    path.parent.mkdir(parents=True)
    torch.save({"mu_prisparam": torch.zeros(36)}, path)
    message = refusal(NIQE)
    assert message.startswith(f"{path} is not a MATLAB .mat file") and "Unknown mat file type" in message


def test_a_niqe_prior_without_the_prior_says_what_it_should_hold() -> None:
    path = entry("niqe-prior").path
    path.parent.mkdir(parents=True)
    scipy.io.savemat(path, {"mu_prisparam": [[0.0] * 18]}, appendmat=False)
    message = refusal(NIQE)
    assert str(path) in message and "cov_prisparam (36x36)" in message and "'mu_prisparam': (1, 18)" in message
