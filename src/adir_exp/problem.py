"""One image to reconstruct: y = A x + e made from the ground truth, and the seeds every method shares.

Every command measures images through :func:`measure`, so ``adir-run`` and ``adir-bench`` give the same y and the
same reconstruction for the same image, task and seed. Seeding is per image and independent of shard layout or
run order: the noise e is drawn from a generator seeded with :func:`image_seed`, and every method samples from a
fresh generator seeded with that seed + 1, so each method of a table sees the same y and the same sampling noise.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch

from adir_exp.data.images import to_image_range, to_model_range
from adir_exp.operators import Physics
from adir_exp.samplers import Measurement


def image_seed(seed: int, image_id: str) -> int:
    """A per-image seed that depends only on the run's seed and the image's id."""
    return (seed * 1_000_003 + zlib.crc32(image_id.encode())) % 2**31


@dataclass
class Problem:
    """A measured image. ``ground_truth`` ([0, 1], CPU) is read only by the metrics and by the retrieval leakage
    guard (which drops near-copies of it from the neighbours); methods reconstruct from ``y`` and ``physics``."""

    image_id: str
    ground_truth: torch.Tensor
    physics: Physics
    y: torch.Tensor  # model range [−1, 1], on ``device``
    seed: int  # the per-image seed (image_seed)
    device: torch.device
    source: str | None = None  # content digest of the file the ground truth was cut from (the leakage guard's)

    @property
    def measurement(self) -> Measurement:
        return Measurement(self.y, self.physics.operator, self.physics.noise.std)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.ground_truth.shape)

    def y_as_image(self) -> torch.Tensor:
        """y in image space ([0, 1], CPU): A⁺y, or y itself where it already is an image (blur)."""
        return to_image_range(self.physics.operator.y_as_image(self.y)).cpu()

    def y_in_unit_range(self) -> torch.Tensor:
        """y as the measurement of the [0, 1] image, (y + A1)/2 = A x₀₁ + e/2 (on ``device``, not clipped): what
        methods that work on [0, 1] images (restorers, DeepRED, deepinv) take; A1 = 1 for SR and blur."""
        operator = self.physics.operator
        ones = torch.ones(self.image_shape, device=self.y.device, dtype=self.y.dtype)
        return (self.y + operator.A(ones)) / 2

    def generator(self) -> torch.Generator:
        """A fresh generator for sampling, the same for every method and every call."""
        return torch.Generator(device=self.device).manual_seed(self.seed + 1)


def measure(
    image_id: str,
    ground_truth: torch.Tensor,
    physics: Physics,
    seed: int,
    device: torch.device,
    source: str | None = None,
) -> Problem:
    """y = A x + e for ``ground_truth`` ([0, 1]), e drawn with the image's own seed; ``source``: the content
    digest of its file."""
    per_image = image_seed(seed, image_id)
    physics = physics.to(device)
    generator = torch.Generator(device=device).manual_seed(per_image)
    y = physics(to_model_range(ground_truth).to(device), generator=generator)
    return Problem(image_id, ground_truth, physics, y, per_image, device, source)
