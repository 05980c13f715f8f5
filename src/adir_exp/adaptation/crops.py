"""The adaptation set as Lightning data: seeded random crops of the adaptation images at the model's size.

Policies (docs/adaptation.md):

* An image whose short side is below the crop size is, by default (``small_images="upscale"``), resized up
  (bicubic) so that its short side equals the crop size; retrieved collection images of any size then still
  count. ``small_images="error"`` raises :class:`AdaptationImageError` instead, for runs that must not train on
  interpolated pixels.
* Larger images are cropped at their own resolution, not resized: crops keep the collection's pixel scale,
  unless ``short_side`` is set: then every image is first resized to that short side, so that crops see the
  scale of the image being reconstructed (a 2K collection photo and a 128-px test image differ 16× in scale).
* Each batch takes ``batch_size`` images from a running sequence of random permutations of the set (every
  image is used once before any is used again), each with its own uniformly random crop window. With fewer
  images than the batch, images repeat within a batch with different crops. An :class:`AdaptationDataWarning`
  reports a set smaller than the caller asked for (``expected``, e.g. the K requested neighbours) or, when
  the caller states no number, smaller than one batch; ``expected=1`` declares repetition intended
  (adaptation on y alone).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from adir_exp.data.images import resize_short_side, to_model_range

SmallImages = Literal["upscale", "error"]


class AdaptationImageError(ValueError):
    """An adaptation image cannot be used (too small for the crop under ``small_images="error"``, bad shape)."""


class AdaptationDataWarning(UserWarning):
    """The adaptation set is smaller than the batch or than requested; images are repeated."""


def fit_to_crop(
    image: torch.Tensor, crop_size: int, small_images: SmallImages, name: str, short_side: int | None = None
) -> torch.Tensor:
    """A (1, 3, H, W) or (3, H, W) image in [0, 1] → (3, H', W') in [−1, 1] with min(H', W') ≥ ``crop_size``."""
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        shape = tuple(image.shape)
        raise AdaptationImageError(f"adaptation image {name} must be (1, 3, H, W) or (3, H, W), got {shape}")
    if short_side is not None:
        image = resize_short_side(image, short_side)
    height, width = image.shape[-2:]
    if min(height, width) < crop_size:
        if small_images == "error":
            raise AdaptationImageError(
                f"adaptation image {name} is {height}×{width}, smaller than the {crop_size}×{crop_size} crop; "
                f"use larger images or adaptation.small_images=upscale"
            )
        image = resize_short_side(image, crop_size)
    return to_model_range(image.float())[0]


class RandomCrops(Dataset):
    """``iterations`` batches of ``batch_size`` random ``crop_size`` crops; batch i is the same on every access.

    Which image and which window each crop takes is drawn once, from ``seed``, when the dataset is built. The
    draws are prefix-consistent: the first N batches are the same whatever ``iterations`` is, so a fit of N
    iterations is exactly the first N steps of a longer one (a cost/benefit curve can read several iteration
    counts off one fit).
    """

    def __init__(self, images: Sequence[torch.Tensor], crop_size: int, batch_size: int, iterations: int, seed: int):
        self.images = list(images)
        self.crop_size = crop_size
        order_draws = torch.Generator().manual_seed(seed)
        count = iterations * batch_size
        rounds = -(-count // len(self.images))  # ceil: enough permutations of the set to fill every batch
        order = torch.cat([torch.randperm(len(self.images), generator=order_draws) for _ in range(rounds)])
        self.sources = order[:count].view(iterations, batch_size)
        window_draws = torch.Generator().manual_seed(seed + 1)
        self.positions = torch.rand(iterations, batch_size, 2, generator=window_draws, dtype=torch.float64)

    def __len__(self) -> int:
        return self.sources.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        crops = []
        for source, position in zip(self.sources[index].tolist(), self.positions[index]):
            image = self.images[source]
            top, left = (int(p * (n - self.crop_size + 1)) for p, n in zip(position.tolist(), image.shape[-2:]))
            crops.append(image[:, top : top + self.crop_size, left : left + self.crop_size])
        return torch.stack(crops)


class AdaptationDataModule(LightningDataModule):
    """Serves :class:`RandomCrops` of the adaptation images ([0, 1] tensors; ``names`` label them in messages)."""

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        crop_size: int,
        batch_size: int = 6,
        iterations: int = 400,
        seed: int = 0,
        expected: int | None = None,
        small_images: SmallImages = "upscale",
        names: Sequence[str] | None = None,
        short_side: int | None = None,
    ) -> None:
        super().__init__()
        if small_images not in ("upscale", "error"):
            raise ValueError(f"small_images must be 'upscale' or 'error', got {small_images!r}")
        if not images:
            raise AdaptationImageError("no adaptation images: retrieval returned none and none were given")
        names = list(names) if names is not None else [f"#{i}" for i in range(len(images))]
        wanted = expected if expected is not None else batch_size
        if len(images) < wanted:
            what = f"{expected} requested" if expected is not None else f"a batch of {batch_size}"
            warnings.warn(
                f"only {len(images)} adaptation image(s) for {what}: images are repeated "
                f"(each repeat with its own random crop)",
                AdaptationDataWarning,
                stacklevel=2,
            )
        self.images = [
            fit_to_crop(image, crop_size, small_images, name, short_side) for image, name in zip(images, names)
        ]
        self.dataset = RandomCrops(self.images, crop_size, batch_size, iterations, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=None, num_workers=0)
