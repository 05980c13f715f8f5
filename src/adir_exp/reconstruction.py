"""One reconstruction from configured parts: ground truth → y = A x + e → guided sampling → images and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
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


def reconstruct(
    ground_truth: torch.Tensor,
    operator: LinearOperator,
    noise: GaussianNoise,
    sampler: Sampler,
    metrics: MetricSuite,
    seed: int,
    device: torch.device,
) -> Reconstruction:
    """Degrade ``ground_truth`` ([0, 1]) and reconstruct it; one generator seeds both noise and sampling.

    Metrics are computed for the reconstruction and, with a ``pseudo_inverse/`` prefix, for A⁺ y.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    x = to_model_range(ground_truth).to(device)
    operator = operator.to(device)
    y = noise(operator.A(x), generator=generator)
    x_hat = sampler.sample(tuple(x.shape), Measurement(y, operator), generator=generator, device=device)
    estimate = to_image_range(x_hat).cpu()
    baseline = to_image_range(operator.A_pinv(y)).cpu()
    scores = {name: float(v.mean()) for name, v in metrics(estimate, ground_truth).items()}
    scores |= {f"pseudo_inverse/{name}": float(v.mean()) for name, v in metrics(baseline, ground_truth).items()}
    return Reconstruction(ground_truth, y.cpu(), baseline, estimate, scores)


def build_components(cfg: DictConfig, device: torch.device) -> tuple[Denoiser, NoiseSchedule, LinearOperator, GaussianNoise]:
    denoiser: Denoiser = instantiate(cfg.model.denoiser).to(device).eval()
    schedule: NoiseSchedule = instantiate(cfg.model.schedule)
    operator: LinearOperator = instantiate(cfg.task.operator)
    noise: GaussianNoise = instantiate(cfg.task.noise)
    return denoiser, schedule, operator, noise
