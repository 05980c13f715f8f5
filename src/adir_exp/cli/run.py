"""``adir-run``: one reconstruction, configured by Hydra groups (model, task, sampler, adaptation, logger)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from adir_exp.paths import CONF_DIR, configure_environment

configure_environment()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from adir_exp.reconstruction import build_components, prepare_ground_truth, reconstruct, resolve_device  # noqa: E402

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    device = resolve_device(cfg.device)
    if cfg.model.name == "adm_tiny":
        log.warning("model=adm_tiny is a tiny ADM with random weights: the run exercises the pipeline, "
                    "its reconstruction is not meaningful. Use model=gd256_uncond for the paper's prior.")
    if cfg.adaptation.mode != "none":
        raise ValueError(f"adaptation mode {cfg.adaptation.mode!r} is not available in this build")
    denoiser, schedule, operator, noise = build_components(cfg, device)
    sampler = instantiate(cfg.sampler)(denoiser=denoiser, schedule=schedule)
    ground_truth = prepare_ground_truth(cfg.image, cfg.image_size)
    result = reconstruct(ground_truth, operator, noise, sampler, instantiate(cfg.metrics), cfg.seed, device)
    files = result.save(output_dir)
    logger = instantiate(cfg.logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    logger.log_metrics(result.metrics)
    if hasattr(logger, "log_image"):
        logger.log_image(key="grid", images=[str(files["grid"])])
    logger.finalize("success")
    (output_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    log.info("metrics: %s", ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()))
    log.info("wrote %s", files["grid"])
    return result.metrics


@hydra.main(config_path=str(CONF_DIR), config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
