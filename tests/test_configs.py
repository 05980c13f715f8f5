"""Every config file of every group composes (into ``run``; experiments into ``bench``) and instantiates.

Weights that users supply (GD-256, SD, CLIP, MUSIQ) and retrieval indexes that users build are absent here, so
a loader may only fail with the framework's missing-file error, which names the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from adir_exp.cli.config import CONF_DIR

GROUP_FILES = sorted(p for p in CONF_DIR.glob("*/**/*.yaml") if p.relative_to(CONF_DIR).parts[0] != "hydra")


def compose_option(path: Path, output_dir: Path) -> tuple[DictConfig, DictConfig]:
    """Compose ``run`` with this file selected; return (whole config, the node the file fills)."""
    relative = path.relative_to(CONF_DIR).with_suffix("")
    group, option = str(relative.parent), relative.name
    nested = "/" in group
    override = f"+{group}@probe={option}" if nested else f"{group}={option}"
    global_package = group in ("experiment", "hparams_search")  # `# @package _global_`: they set any key
    app = "bench" if global_package else "run"  # experiments describe benchmark tables, searches sweep them
    context = ["task=edit"] if (group, option) == ("method", "adir_sd_text") else []  # it retrieves by the edit's text
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=app, overrides=[override, *context], return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    if nested:
        node = cfg.probe
    elif global_package:
        node = cfg
    elif group == "method":
        node = cfg.methods[option]
    else:
        node = cfg[group]
    return cfg, node


def instantiable_nodes(node):
    """Every outermost mapping with a ``_target_``."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield node
            return
        for key in node:
            if key != "hydra":
                yield from instantiable_nodes(node[key])


def is_missing_user_file(error: BaseException | None) -> bool:
    while error is not None:
        # the framework's own missing-file errors (weights, checkpoints, indexes) say what goes where
        if isinstance(error, FileNotFoundError) and type(error).__module__.startswith("adir_exp."):
            return True
        error = error.__cause__
    return False


@pytest.mark.parametrize("launcher", sorted((CONF_DIR / "hydra" / "launcher").glob("*.yaml")), ids=lambda p: p.stem)
def test_launcher_configs_compose(launcher: Path) -> None:
    """The submitit launcher presets compose onto the benchmark app (they run only under -m)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=[f"hydra/launcher={launcher.stem}"], return_hydra_config=True)
    assert "submitit" in cfg.hydra.launcher._target_


def test_groups_exist() -> None:
    groups = {p.relative_to(CONF_DIR).parts[0] for p in GROUP_FILES}
    assert {"model", "task", "sampler", "retrieval", "adaptation", "method", "logger", "metrics"} <= groups


def test_the_optuna_search_composes_onto_an_experiment_as_a_sweep_of_the_learning_rate() -> None:
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import LogUniformDistribution

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=["experiment=domain_shift_curve", "hparams_search=adir_lr_optuna"],
                      return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.mode.name == "MULTIRUN"
    assert (sweeper.direction, cfg.optimized_metric) == ("minimize", "adir_knn/lpips")  # LPIPS: lower is better
    assert "adir_knn" in cfg.methods and cfg.experiment_name == "domain_shift_curve"  # the experiment is kept
    space, fixed = create_params_from_overrides([f"{key}={value}" for key, value in sweeper.params.items()])
    assert fixed == {} and space == {"adaptation.lr": LogUniformDistribution(1e-4, 1e-2)}


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: str(p.relative_to(CONF_DIR)))
def test_config_composes_and_instantiates(path: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    _, node = compose_option(path, tmp_path)
    for target in instantiable_nodes(node):
        if OmegaConf.missing_keys(target):  # a value the user must give (e.g. adir_given's images): nothing to build
            continue
        try:
            instantiate(target)
        except Exception as error:
            if not is_missing_user_file(error):
                raise


def test_domain_shift_gives_the_domain_centroid_control_its_domain_but_does_not_run_it() -> None:
    from adir_exp.adaptation.sources import NearestToDomainCentroid

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        default = compose(config_name="bench", overrides=["experiment=domain_shift_sr4_documents"])
        chosen = compose(config_name="bench",
                         overrides=["experiment=domain_shift_sr4_documents", "method=[gd,adir_domain_knn]"])
    assert "_target_" not in default.methods.adir_domain_knn  # a preset, not a default row
    source = instantiate(chosen.methods.adir_domain_knn.source)
    assert isinstance(source, NearestToDomainCentroid) and source.within == "documents"
