"""``adir-run``: one reconstruction, configured by Hydra groups (model, task, sampler, adaptation, logger)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from adir_exp.paths import CONF_DIR, configure_environment

configure_environment()

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from lightning.pytorch.loggers import Logger  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from torch import nn  # noqa: E402

from adir_exp.adaptation.artifacts import load_adapter  # noqa: E402
from adir_exp.adaptation.lora import merge_lora  # noqa: E402
from adir_exp.adaptation.objective import AdaptationObjective  # noqa: E402
from adir_exp.adaptation.pipeline import adapt  # noqa: E402
from adir_exp.metrics import MetricSuite  # noqa: E402
from adir_exp.operators import LinearOperator  # noqa: E402
from adir_exp.reconstruction import (  # noqa: E402
    Degradation,
    Reconstruction,
    degrade,
    prepare_ground_truth,
    resolve_device,
    restore,
)
from adir_exp.reconstruction_sd import (  # noqa: E402
    SDEditing,
    SDUpscaling,
    collect_task_images,
    is_latent_diffusion,
    load_pipeline,
    sd_objective,
    sd_reconstruction,
)
from adir_exp.samplers import Sampler  # noqa: E402

log = logging.getLogger(__name__)


@dataclass
class Prior:
    """What a run needs of its model, pixel-space (GD/ADM) or latent (SD): the network LoRA goes into, how it
    reconstructs from y, and its adaptation loss (built only when adapting: it may load LPIPS, encode a prompt)."""

    network: nn.Module
    sampler: Sampler | SDUpscaling | SDEditing
    objective: Callable[[], AdaptationObjective]


def build_prior(cfg: DictConfig, operator: LinearOperator, device: torch.device) -> Prior:
    """SD models reconstruct with their diffusers pipeline (no eq. 17 guidance, as in the paper) and adapt with
    ``model.objective``; pixel-space models with ``sampler`` and ``adaptation.objective``."""
    if is_latent_diffusion(cfg.model):
        pipeline = load_pipeline(cfg.model, device)
        sampler = sd_reconstruction(pipeline, cfg.model.inference, cfg.task, operator)
        return Prior(pipeline.unet, sampler, lambda: sd_objective(pipeline, cfg.model.objective, cfg.task, operator))
    if cfg.model.name == "adm_tiny":
        log.warning("model=adm_tiny is a tiny ADM with random weights: the run exercises the pipeline, "
                    "its reconstruction is not meaningful. Use model=gd256_uncond for the paper's prior.")
    denoiser = instantiate(cfg.model.denoiser).to(device).eval()
    schedule = instantiate(cfg.model.schedule)
    sampler = instantiate(cfg.sampler)(denoiser=denoiser, schedule=schedule)
    return Prior(denoiser.unet, sampler,
                 lambda: instantiate(cfg.adaptation.objective)(denoiser=denoiser, schedule=schedule))


def run(cfg: DictConfig) -> dict[str, float]:
    """Degrade the image, then reconstruct it: with the prior as it is (adaptation=none), with a saved adapter
    (adaptation.load=...), or after adapting on retrieved images / on y (adaptation=knn / self)."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    device = resolve_device(cfg.device)
    operator = instantiate(cfg.task.operator)
    prior = build_prior(cfg, operator, device)
    metrics = instantiate(cfg.metrics)
    logger = instantiate(cfg.logger)
    noise = instantiate(cfg.task.noise)
    degradation = degrade(prepare_ground_truth(cfg.image, cfg.image_size), operator, noise, cfg.seed, device)
    settings = cfg.adaptation
    if settings.load:
        metadata = load_adapter(prior.network, settings.load, base_model=cfg.model.name)
        log.info("loaded adapter %s (fitted for task %s on %d image(s)); not adapting again", settings.load,
                 metadata.task, metadata.k)
        if settings.merge:
            merge_lora(prior.network)
    if settings.load or settings.mode == "none":
        result = restore(degradation, prior.sampler, metrics)
        result.log(logger, result.save(output_dir)["grid"])
    else:
        result = adapt_to_measurement(cfg, prior, degradation, metrics, logger, output_dir)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    logger.finalize("success")
    (output_dir / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    log.info("metrics: %s", ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()))
    log.info("wrote %s", output_dir / "grid.png")
    return result.metrics


def adapt_to_measurement(
    cfg: DictConfig,
    prior: Prior,
    degradation: Degradation,
    metrics: MetricSuite,
    logger: Logger,
    output_dir: Path,
) -> Reconstruction:
    """adaptation=knn / self: gather the adaptation images, fit LoRA, reconstruct (the callback writes the images)."""
    settings = cfg.adaptation
    retrieves = settings.mode in ("knn", "random") and not settings.images
    retriever = instantiate(cfg.retrieval) if retrieves else None
    images = collect_task_images(settings.mode, degradation, retriever, settings.images, cfg.task, settings.seed)
    log.info("adapting on %d image(s) (%s) for %d iterations", len(images.images), settings.mode, settings.iterations)
    result = adapt(settings, prior.objective(), images, degradation, prior.sampler, metrics, logger, output_dir,
                   base_model=cfg.model.name, task=cfg.task.name)
    if settings.save:
        log.info("wrote adapter %s", output_dir / settings.save)
    return result


@hydra.main(config_path=str(CONF_DIR), config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
