"""One reconstruction from configured parts: ground truth → y = A x + e → guided sampling → images and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from adir_exp.data.images import (
    ASSET_IMAGE,
    center_crop,
    image_grid,
    load_image,
    resize_short_side,
    save_image,
    to_image_range,
    to_model_range,
)
from adir_exp.diffusion import NoiseSchedule
from adir_exp.metrics import MetricSuite
from adir_exp.models.denoiser import Denoiser
from adir_exp.operators import GaussianNoise, LinearOperator
from adir_exp.samplers import Measurement, Sampler


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare_ground_truth(path: str | None, size: int | None) -> torch.Tensor:
    """Load the image (default: the bundled photo), resize its short side to ``size`` and centre-crop a square."""
    image = load_image(path or ASSET_IMAGE)
    if size:
        image = center_crop(resize_short_side(image, size), size)
    return image


@dataclass
class Reconstruction:
    ground_truth: torch.Tensor          # [0, 1]
    measurement: torch.Tensor           # model range
    baseline: torch.Tensor              # A⁺ y in [0, 1]
    estimate: torch.Tensor              # [0, 1]
    metrics: dict[str, float] = field(default_factory=dict)

    def save(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        y = to_image_range(self.measurement)
        files = {
            "ground_truth": save_image(self.ground_truth, directory / "ground_truth.png"),
            "measurement": save_image(y, directory / "measurement.png"),
            "pseudo_inverse": save_image(self.baseline, directory / "pseudo_inverse.png"),
            "reconstruction": save_image(self.estimate, directory / "reconstruction.png"),
        }
        grid = image_grid([self.ground_truth, y, self.baseline, self.estimate], ["GT", "y", "A+ y", "reconstruction"])
        files["grid"] = save_image(grid, directory / "grid.png")
        return files

    def log(self, logger: Logger, image: Path, step: int | None = None, key: str = "grid") -> None:
        """Send the metrics, and ``image`` (a written file) where the logger takes images (W&B), to ``logger``."""
        logger.log_metrics(self.metrics, step=step)
        if hasattr(logger, "log_image"):
            logger.log_image(key=key, images=[str(image)], step=step)


@dataclass
class Degradation:
    """y = A x + e for one ground truth, plus the seeded generator's state right after e was drawn.

    Sampling continues from that state, so a reconstruction after adaptation (or after loading an adapter) draws
    exactly the noise a plain run with the same seed draws, whatever happened in between.
    """

    ground_truth: torch.Tensor          # [0, 1], CPU
    operator: LinearOperator            # on ``device``
    y: torch.Tensor                     # model range, on ``device``
    sampling_state: torch.Tensor
    device: torch.device

    def generator(self) -> torch.Generator:
        """A fresh generator at the state sampling starts from."""
        generator = torch.Generator(device=self.device)
        generator.set_state(self.sampling_state)
        return generator


def degrade(
    ground_truth: torch.Tensor, operator: LinearOperator, noise: GaussianNoise, seed: int, device: torch.device
) -> Degradation:
    """Measure ``ground_truth`` ([0, 1]): y = A x + e, with e drawn from a generator seeded with ``seed``."""
    generator = torch.Generator(device=device).manual_seed(seed)
    x = to_model_range(ground_truth).to(device)
    operator = operator.to(device)
    y = noise(operator.A(x), generator=generator)
    return Degradation(ground_truth, operator, y, generator.get_state(), device)


def restore(degradation: Degradation, sampler: Sampler, metrics: MetricSuite) -> Reconstruction:
    """Reconstruct from y with ``sampler``; metrics for the estimate and, prefixed ``pseudo_inverse/``, for A⁺ y."""
    ground_truth, operator, y = degradation.ground_truth, degradation.operator, degradation.y
    measurement = Measurement(y, operator)
    generator = degradation.generator()
    x_hat = sampler.sample(tuple(ground_truth.shape), measurement, generator=generator, device=degradation.device)
    estimate = to_image_range(x_hat).cpu()
    baseline = to_image_range(operator.A_pinv(y)).cpu()
    scores = {name: float(v.mean()) for name, v in metrics(estimate, ground_truth).items()}
    scores |= {f"pseudo_inverse/{name}": float(v.mean()) for name, v in metrics(baseline, ground_truth).items()}
    return Reconstruction(ground_truth, y.cpu(), baseline, estimate, scores)


def reconstruct(
    ground_truth: torch.Tensor,
    operator: LinearOperator,
    noise: GaussianNoise,
    sampler: Sampler,
    metrics: MetricSuite,
    seed: int,
    device: torch.device,
) -> Reconstruction:
    """Degrade ``ground_truth`` ([0, 1]) and reconstruct it; one seed fixes both the noise and the sampling."""
    return restore(degrade(ground_truth, operator, noise, seed, device), sampler, metrics)


def build_components(cfg: DictConfig, device: torch.device) -> tuple[Denoiser, NoiseSchedule, LinearOperator, GaussianNoise]:
    denoiser: Denoiser = instantiate(cfg.model.denoiser).to(device).eval()
    schedule: NoiseSchedule = instantiate(cfg.model.schedule)
    operator: LinearOperator = instantiate(cfg.task.operator)
    noise: GaussianNoise = instantiate(cfg.task.noise)
    return denoiser, schedule, operator, noise
