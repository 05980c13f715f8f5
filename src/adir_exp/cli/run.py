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
from lightning.pytorch.loggers import Logger  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from adir_exp.adaptation.artifacts import load_adapter  # noqa: E402
from adir_exp.adaptation.lora import merge_lora  # noqa: E402
from adir_exp.adaptation.pipeline import adapt, collect_images  # noqa: E402
from adir_exp.diffusion import NoiseSchedule  # noqa: E402
from adir_exp.metrics import MetricSuite  # noqa: E402
from adir_exp.models.denoiser import Denoiser  # noqa: E402
from adir_exp.reconstruction import (  # noqa: E402
    Degradation,
    Reconstruction,
    build_components,
    degrade,
    prepare_ground_truth,
    resolve_device,
    restore,
)
from adir_exp.samplers import Sampler  # noqa: E402

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    """Degrade the image, then reconstruct it: with the prior as it is (adaptation=none), with a saved adapter
    (adaptation.load=...), or after adapting on retrieved images / on y (adaptation=knn / self)."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    device = resolve_device(cfg.device)
    if cfg.model.name == "adm_tiny":
        log.warning("model=adm_tiny is a tiny ADM with random weights: the run exercises the pipeline, "
                    "its reconstruction is not meaningful. Use model=gd256_uncond for the paper's prior.")
    denoiser, schedule, operator, noise = build_components(cfg, device)
    sampler = instantiate(cfg.sampler)(denoiser=denoiser, schedule=schedule)
    metrics = instantiate(cfg.metrics)
    logger = instantiate(cfg.logger)
    degradation = degrade(prepare_ground_truth(cfg.image, cfg.image_size), operator, noise, cfg.seed, device)
    settings = cfg.adaptation
    if settings.load:
        metadata = load_adapter(denoiser.unet, settings.load, base_model=cfg.model.name)
        log.info("loaded adapter %s (fitted for task %s on %d image(s)); not adapting again", settings.load,
                 metadata.task, metadata.k)
        if settings.merge:
            merge_lora(denoiser.unet)
    if settings.load or settings.mode == "none":
        result = restore(degradation, sampler, metrics)
        result.log(logger, result.save(output_dir)["grid"])
    else:
        result = adapt_to_measurement(cfg, denoiser, schedule, degradation, sampler, metrics, logger, output_dir)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    logger.finalize("success")
    (output_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    log.info("metrics: %s", ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()))
    log.info("wrote %s", output_dir / "grid.png")
    return result.metrics


def adapt_to_measurement(
    cfg: DictConfig,
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    degradation: Degradation,
    sampler: Sampler,
    metrics: MetricSuite,
    logger: Logger,
    output_dir: Path,
) -> Reconstruction:
    """adaptation=knn / self: gather the adaptation images, fit LoRA, reconstruct (the callback writes the images)."""
    settings = cfg.adaptation
    retriever = instantiate(cfg.retrieval) if settings.mode == "knn" and not settings.images else None
    images = collect_images(settings.mode, degradation, retriever, settings.images)
    log.info("adapting on %d image(s) (%s) for %d iterations", len(images.images), settings.mode, settings.iterations)
    objective = instantiate(settings.objective)(denoiser=denoiser, schedule=schedule)
    result = adapt(settings, objective, images, degradation, sampler, metrics, logger, output_dir,
                   base_model=cfg.model.name, task=cfg.task.name)
    if settings.save:
        log.info("wrote adapter %s", output_dir / settings.save)
    return result


@hydra.main(config_path=str(CONF_DIR), config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
