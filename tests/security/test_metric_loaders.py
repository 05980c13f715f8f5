"""Every weight file a metric reads is data: a crafted pickle in its place is refused and never runs (issue 20).

The files: the LPIPS backbones and linear layers (the lpips package would unpickle the latter itself), the NIQE
prior (.mat), MUSIQ checkpoints and DISTS' alpha/beta and backbone. Each case runs with torch's defaults and with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the ``marker`` fixture, conftest.py); the other loaders: test_loaders.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adir_exp.metrics import DISTS, LPIPS, MUSIQ, NIQE, Metric
from adir_exp.weights import CheckpointError, entry, load_tensors
from tests.security.conftest import FORCE_UNSAFE
from tests.security.crafted import (
    plant_pickle_bomb,
    put,
    redirect_lpips_package,
    stand_in_weights,
)


@pytest.fixture(scope="session")
def valid_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Loadable files of the right layout (random values), for the keys read before or beside a crafted one."""
    root = tmp_path_factory.mktemp("valid_weights")
    keys = ("torchvision-alexnet", "torchvision-vgg16", "dists-weights")
    return {key: stand_in_weights(key, root / f"{key}.pth") for key in keys}


@pytest.fixture
def lpips_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return redirect_lpips_package(tmp_path / "lpips", monkeypatch)


CASES: dict[str, tuple[str, list[str], Callable[[], Metric]]] = {
    # name: (the file crafted, the files read before or beside it, the metric that reads them)
    "lpips-backbone": ("torchvision-alexnet", [], lambda: LPIPS(net="alex")),
    "lpips-linear-layers": ("lpips-alex-linear", ["torchvision-alexnet"], lambda: LPIPS(net="alex")),
    "niqe-prior": ("niqe-prior", [], NIQE),
    "musiq": ("musiq-ava", [], lambda: MUSIQ(dataset="ava")),
    "dists-backbone": ("torchvision-vgg16", ["dists-weights"], DISTS),
    "dists-alpha-beta": ("dists-weights", ["torchvision-vgg16"], DISTS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_crafted_metric_weight_file_is_refused_and_never_runs(
    case: str, marker: Path, valid_files: dict[str, Path], lpips_package: Path
) -> None:
    crafted, valid, build = CASES[case]
    for key in valid:
        put(key, valid_files[key])
    path = plant_pickle_bomb(entry(crafted).path, marker)
    with pytest.raises(CheckpointError) as refused:
        build()
    message = str(refused.value)
    assert not marker.exists()
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize(("build", "files"), [
    (lambda: LPIPS(net="alex"), {"torchvision-alexnet", "lpips-alex-linear"}),
    (DISTS, {"torchvision-vgg16", "dists-weights"}),
], ids=["lpips", "dists"])
def test_building_a_metric_reads_each_weight_file_once_with_weights_only_set(
    build: Callable[[], Metric], files: set[str], valid_files: dict[str, Path], isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The libraries' own loaders stay unused: lpips would read its linear layers with a bare ``torch.load``
    (from its own folder, whatever the registry says) and ``strict=False``."""
    for key in files & set(valid_files):
        put(key, valid_files[key])
    calls: list[tuple[str, object]] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *args, **kwargs: calls.append((str(f), kwargs.get("weights_only")))
                        or real_load(f, *args, **kwargs))
    build()
    assert sorted(calls) == sorted((str(entry(key).path), True) for key in files)


def test_the_tensor_reader_passes_weights_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch honours TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only where the caller leaves ``weights_only`` unset
    (torch/serialization.py: ``weights_only_not_set``), so the reader must set it, not rely on the default."""
    path = tmp_path / "state.pth"
    torch.save({"weight": torch.zeros(2)}, path)
    calls: list[dict] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or real_load(*args, **kwargs))
    assert load_tensors(path)["weight"].shape == (2,)
    assert [call.get("weights_only") for call in calls] == [True]


def test_the_variable_does_unlock_a_torch_load_that_leaves_weights_only_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the cases above run with the variable set: with it, this torch unpickles anything a bare ``torch.load``
    is given, as the lpips package's own loader would have (so the suite can fail)."""
    monkeypatch.setenv(FORCE_UNSAFE, "1")
    marker = tmp_path / "MARKER"
    path = plant_pickle_bomb(tmp_path / "crafted.pth", marker)
    with pytest.warns(UserWarning, match=FORCE_UNSAFE):
        torch.load(path, map_location="cpu")
    assert marker.exists()
