"""The package's shape: configs only in cli/ (and its config loader), SD pipeline classes only in the SD prior
module, one method file per name."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from adir_exp.cli.config import CONF_DIR

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "adir_exp"


def python_files(pattern: str) -> dict[str, str]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if re.search(pattern, text):
            found[str(path.relative_to(PACKAGE))] = text
    return found


def test_only_the_commands_know_hydra_and_omegaconf() -> None:
    users = python_files(r"^\s*(from|import) (hydra|omegaconf)\b|DictConfig")
    assert all(name.startswith("cli/") for name in users), sorted(users)


def test_stable_diffusion_pipeline_classes_live_in_the_sd_prior_module_only() -> None:
    users = python_files(r"StableDiffusionUpscalePipeline|StableDiffusionInpaintPipeline|is_latent_diffusion")
    assert sorted(users) == ["priors/stable_diffusion.py"]


def test_each_method_file_is_packaged_under_its_own_name() -> None:
    for path in sorted((CONF_DIR / "method").glob("*.yaml")):
        header = path.read_text().splitlines()[0]
        assert header == f"# @package methods.{path.stem}", path.name
        assert "_target_" in yaml.safe_load(path.read_text())
