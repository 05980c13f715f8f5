"""A wheel (not an editable install) carries every config and the paper's numbers, and its commands compose from
the installed package in a directory outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from adir_exp.cli.config import CONF_DIR
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO_ROOT)], check=True, capture_output=True, timeout=600)  # fmt: skip
    (path,) = out.glob("adir_exp-*.whl")
    return path


@pytest.mark.integration
def test_the_wheel_holds_every_config_and_the_paper_results(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"adir_exp/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)
    assert "adir_exp/evaluation/paper_results.yaml" in names
    assert "adir_exp/assets/prior/diffusion_pytorch_model.safetensors" in names


@pytest.mark.integration
def test_an_installed_wheel_composes_adir_run_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=600)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import adir_exp; print(adir_exp.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.strip().startswith(str(target))
    result = subprocess.run([sys.executable, "-m", "adir_exp.cli.run", "--cfg", "job", "model=adir_prior"],
                            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "methods:" in result.stdout and "adir_prior" in result.stdout


def test_the_package_asks_for_a_torch_range_and_constraints_pin_it() -> None:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    torch_requirement = next(r for r in project["dependencies"] if r.startswith("torch") and "vision" not in r)
    assert "==" not in torch_requirement, torch_requirement  # a compatible range for the package ...
    pins = (REPO_ROOT / "constraints.txt").read_text()
    assert "torch==" in pins and "torchvision==" in pins  # ... exact pins for installs of this repository
