"""Run methods over benchmark images: same y and seed for every method, one result row per finished pair."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from adir_exp.benchmark.dataset import BenchmarkImage, image_seed
from adir_exp.benchmark.methods import Method, MethodContext
from adir_exp.benchmark.results import ResultStore
from adir_exp.data.images import image_grid, save_image, to_image_range, to_model_range
from adir_exp.diffusion import NoiseSchedule
from adir_exp.metrics import MetricSuite
from adir_exp.models.denoiser import Denoiser
from adir_exp.operators import GaussianNoise, LinearOperator

log = logging.getLogger(__name__)


@dataclass
class BenchmarkRunner:
    methods: dict[str, Method]
    denoiser: Denoiser
    schedule: NoiseSchedule
    operator: LinearOperator
    noise: GaussianNoise
    metrics: MetricSuite
    store: ResultStore
    output_dir: Path
    seed: int
    device: torch.device

    def measurement(self, ground_truth: torch.Tensor, image_id: str) -> torch.Tensor:
        generator = torch.Generator(device=self.device).manual_seed(image_seed(self.seed, image_id))
        x = to_model_range(ground_truth).to(self.device)
        return self.noise(self.operator.to(self.device).A(x), generator=generator)

    def run_image(self, item: BenchmarkImage, ground_truth: torch.Tensor, done: set) -> int:
        """Run every unfinished method on one image; return how many rows were written."""
        pending = [m for m in self.methods if (m, item.image_id, self.seed) not in done]
        if not pending:
            return 0
        y = self.measurement(ground_truth, item.image_id)
        image_dir = self.output_dir / "images" / item.image_id
        save_image(ground_truth, image_dir / "ground_truth.png")
        save_image(to_image_range(y), image_dir / "measurement.png")
        for name in pending:
            context = MethodContext(self.denoiser, self.schedule, self.device, item.image_id, ground_truth, image_dir)
            generator = torch.Generator(device=self.device).manual_seed(image_seed(self.seed, item.image_id) + 1)
            start = time.perf_counter()
            estimate = to_image_range(self.methods[name](y, self.operator, context, generator)).cpu()
            seconds = time.perf_counter() - start
            scores = {k: float(v.mean()) for k, v in self.metrics(estimate, ground_truth).items()}
            save_image(estimate, image_dir / f"{name}.png")
            self.store.append({"method": name, "image": item.image_id, "seed": self.seed, "seconds": seconds, **scores})
            log.info("%s %s: %s (%.1f s)", item.image_id, name, ", ".join(f"{k}={v:.4f}" for k, v in scores.items()), seconds)
        return len(pending)


def write_grid(output_dir: Path, image_id: str, methods: list[str]) -> Path | None:
    """GT | degraded | methods for one image, from the saved per-image outputs."""
    from adir_exp.data.images import load_image

    image_dir = output_dir / "images" / image_id
    names = ["ground_truth", "measurement", *methods]
    paths = [image_dir / f"{n}.png" for n in names]
    if not all(p.exists() for p in paths):
        return None
    grid = image_grid([load_image(p) for p in paths], ["GT", "y", *methods])
    return save_image(grid, output_dir / "grids" / f"{image_id}.png")
