"""Weight files for the security suite: malicious ones, which run code when unpickled by a loader that trusts them,
and loadable stand-ins for the files a loader reads before or beside the crafted one.

The payload only touches a marker file (a harmless stand-in for ``os.system``), so a test can assert that no
loader ran it: the file must be refused and the marker must not exist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from adir_exp.weights import entry, registry


class TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def plant_pickle_bomb(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file at ``path`` that looks like a state dict and touches ``marker`` when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(1), "payload": TouchOnUnpickle(marker)}, path)
    return path


class _SaveOnLoad(torch.nn.Module):
    """A TorchScript module whose ``__setstate__`` (run by ``torch.jit.load``) writes a file of its choosing."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.marker = marker

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return self.weight, self.marker, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.marker = state[1]
        self.training = state[2]
        torch.ops.aten.save(state[0], state[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def plant_torchscript_bomb(path: Path, marker: Path) -> Path:
    """A TorchScript archive at ``path`` that writes ``marker`` when ``torch.jit.load`` deserialises it. Scripted in a
    fresh interpreter: TorchScript's compiler keeps global state that earlier tests (torch.compile) can leave such
    that scripting this class fails in a long test session."""
    import subprocess
    import sys

    path.parent.mkdir(parents=True, exist_ok=True)
    code = ("import sys, warnings, torch\n"
            "from tests.security.crafted import _SaveOnLoad\n"
            "warnings.simplefilter('ignore', FutureWarning)\n"
            "torch.jit.script(_SaveOnLoad(sys.argv[2])).save(sys.argv[1])\n")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(path), str(marker)], cwd=root, check=True)
    return path


def plant_code_zip(path: Path) -> Path:
    """A zip with a top-level ``code/`` entry (not a TorchScript archive, which nests ``<name>/code/``)."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("code/__init__.py", "print('hello')\n")
        archive.writestr("data.pkl", b"\x80\x02}q\x00.")
    return path


def stand_in_weights(key: str, path: Path) -> Path:
    """A loadable file with the layout of registry entry ``key`` (random values) at ``path``."""
    if key == "dists-weights":
        state = {name: torch.rand(1, 1475, 1, 1) for name in ("alpha", "beta")}
    else:
        layers = {  # torchvision's conv layers only: the loaders ignore the classifier
            "torchvision-alexnet": lambda: torchvision.models.AlexNet().features,
            "torchvision-vgg16": lambda: make_layers(cfgs["D"]),
        }[key]()
        state = {f"features.{name}": tensor for name, tensor in layers.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def put(key: str, source: Path) -> Path:
    """``source`` linked where the registry looks for ``key``."""
    target = entry(key).path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


def redirect_lpips_package(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lpips wheel's weight folder, as the registry sees it, moved to a copy under ``root``: a test can plant
    files there without touching the installed package."""
    for net in ("alex", "vgg"):
        copy = root / "weights" / "v0.1" / f"{net}.pth"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(entry(f"lpips-{net}-linear").path, copy)
    installed = registry.package_file
    monkeypatch.setattr(registry, "package_file", lambda package, relative: (
        root / relative if package == "lpips" else installed(package, relative)))
    return root
