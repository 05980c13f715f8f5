"""``adir-run``: one image × the selected method(s), through the same path as ``adir-bench`` (conf/run.yaml).

    adir-run                                          # GD (eq. 17 guidance) on the bundled photo, tiny random ADM
    adir-run model=adir_prior method=adir_knn retrieval=bundled image_size=128
    adir-run model=adir_prior method=[gd,adir_self] adaptation.iterations=100
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from adir_exp.cli.config import (
    CONFIG_PATH,
    ConfigError,
    command_line,
    reported_as,
    validate,
)
from adir_exp.cli.console import quiet_console
from adir_exp.paths import configure_environment

configure_environment()


def run(cfg: DictConfig) -> dict[str, dict[str, float | None]]:
    """Reconstruct ``cfg.image`` with every selected method; returns {method: {metric: value}}."""
    import json
    import math

    from hydra.core.hydra_config import HydraConfig

    from adir_exp.cli.build_and_run import build, execute, publish
    from adir_exp.data.images import ASSET_IMAGE, ImageReadError
    from adir_exp.evaluation.benchmark_images import prepare
    from adir_exp.retrieval.leakage import content_digest  # what a row's "source" holds

    quiet_console()
    validate(cfg)
    path = Path(cfg.image).expanduser() if cfg.image else ASSET_IMAGE
    try:
        image = prepare(path, cfg.image_size, cfg.preprocess)
    except (ImageReadError, ValueError) as error:
        raise ConfigError(f"image={cfg.image!r}: {error}") from error
    preprocessing = {"image": str(path), "size": cfg.image_size, "preprocess": cfg.preprocess}
    experiment = build(cfg, preprocessing, {tuple(image.shape)}, "image_size")
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    report = execute(experiment, [(path.stem, content_digest(path), image)], output_dir, output_dir,
                     save_adapters=cfg.save_adapters, grid_images=1)
    scores = {row["method"]: {k[: -len("_mean")]: None if math.isnan(v) else v for k, v in row.items()
                              if k.endswith("_mean") and k != "seconds_mean"}
              for row in report.table if row["n"]}  # a metric that could not score the image is null
    (output_dir / "metrics.json").write_text(json.dumps(scores, indent=2))  # before the logger: W&B may fail
    publish(experiment, report)
    return scores


@hydra.main(config_path=CONFIG_PATH, config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    rerun = command_line("adir-run")
    if hydra.mode == RunMode.RUN and not any(arg.startswith("hydra.run.dir=") for arg in sys.argv[1:]):
        rerun = command_line("adir-run", f"hydra.run.dir={hydra.runtime.output_dir}")  # its rows live there
    with reported_as("adir-run", rerun=rerun):
        run(cfg)


if __name__ == "__main__":
    main()
