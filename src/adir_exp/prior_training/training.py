"""Training the embedded prior: a small pixel-space ε-prediction DDPM on random crops of the corpus.

The network is a diffusers ``UNet2DModel`` without attention above the lowest resolution, so it is fully
convolutional and can be run on images larger than its training crops. Crops are drawn from a resolution
pyramid of each training photo, so the model sees whole-scene content (short side = crop size, as in
``adir-run``'s default 64×64 centre crop) as well as close-up texture. The EMA weights are what is exported.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from diffusers import UNet2DModel
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from adir_exp.data.images import IMAGE_SUFFIXES
from adir_exp.diffusion import NoiseSchedule


def build_unet(
    sample_size: int = 64,
    block_out_channels: Sequence[int] = (32, 64, 64, 128),
    layers_per_block: int = 1,
    attention_at_lowest: bool = True,
    attention_head_dim: int = 32,
    norm_num_groups: int = 32,
) -> UNet2DModel:
    """A small ε-prediction UNet (3 → 3 channels: fixed variance), attention only at the lowest resolution."""
    levels = len(block_out_channels)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention_at_lowest:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
    )


class PyramidCrops(Dataset):
    """Random ``crop``×``crop`` patches in [−1, 1] with random horizontal flips from a multi-scale image pyramid.

    Each photo is kept in memory at short sides ``crop · 1.5^k`` up to its stored size; a sample picks a photo
    and a level uniformly, then a crop. Indices are ignored: the randomness comes from torch's global RNG, which
    Lightning seeds, and ``length`` only sets how many samples make one epoch.
    """

    def __init__(self, root: Path, crop: int, length: int, scale_step: float = 1.5):
        files = sorted(p for p in Path(root).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no training images in {root} (build them with adir-make-data)")
        self.crop, self.length = crop, length
        self.levels: list[torch.Tensor] = []
        for path in files:
            with Image.open(path) as image:
                image = image.convert("RGB")
            short = min(image.size)
            if short < crop:
                raise ValueError(f"{path} is smaller than the {crop}px crop")
            size = float(crop)
            while size <= short:
                scale = size / short
                level = image.resize((max(crop, round(image.width * scale)), max(crop, round(image.height * scale))),
                                     Image.Resampling.LANCZOS)
                array = np.asarray(level, dtype=np.float32) / 127.5 - 1.0
                self.levels.append(torch.from_numpy(array).permute(2, 0, 1).contiguous())
                size *= scale_step

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        level = self.levels[int(torch.randint(len(self.levels), ()))]
        h, w = level.shape[-2:]
        top = int(torch.randint(h - self.crop + 1, ()))
        left = int(torch.randint(w - self.crop + 1, ()))
        patch = level[:, top : top + self.crop, left : left + self.crop]
        return patch.flip(-1) if torch.rand(()) < 0.5 else patch


class CropDataModule(L.LightningDataModule):
    """Feeds :class:`PyramidCrops` of one image folder; ``num_workers=0`` keeps a shared CPU machine usable."""

    def __init__(self, root: str | Path, crop: int = 64, batch_size: int = 8, epoch_length: int = 10_000,
                 num_workers: int = 0):
        super().__init__()
        self.root, self.crop, self.batch_size = Path(root), crop, batch_size
        self.epoch_length, self.num_workers = epoch_length, num_workers
        self.dataset: PyramidCrops | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = PyramidCrops(self.root, self.crop, self.epoch_length)

    def train_dataloader(self) -> DataLoader:
        assert self.dataset is not None
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers, drop_last=True)


class DDPMPrior(L.LightningModule):
    """ε-prediction DDPM loss ‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖² with t uniform, AdamW + warm-up, weight EMA.

    The EMA decay follows ``min(ema_decay, (1 + step) / (10 + step))`` so that a short run's EMA is not
    dominated by the random initialisation.
    """

    def __init__(self, unet: UNet2DModel, schedule: NoiseSchedule, lr: float = 2e-4, weight_decay: float = 0.0,
                 warmup_steps: int = 100, ema_decay: float = 0.999):
        super().__init__()
        self.unet = unet
        self.ema = copy.deepcopy(unet).requires_grad_(False)
        self.schedule = schedule
        self.lr, self.weight_decay, self.warmup_steps, self.ema_decay = lr, weight_decay, warmup_steps, ema_decay

    def training_step(self, x0: torch.Tensor, batch_idx: int) -> torch.Tensor:
        t = torch.randint(0, self.schedule.num_train_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        loss = F.mse_loss(self.unet(x_t, t).sample, noise)
        self.log("loss", loss, prog_bar=True)
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        step = self.global_step
        decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
        for ema, param in zip(self.ema.parameters(), self.unet.parameters()):
            ema.lerp_(param, 1.0 - decay)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.unet.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warmup = max(1, self.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LossCSV(L.Callback):
    """Appends (step, loss, lr, wall seconds) per optimiser step: the loss curve of the model card."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.start = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        with open(self.path, "w", newline="") as handle:
            csv.writer(handle).writerow(["step", "loss", "lr", "wall_s"])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([trainer.global_step, f"{loss:.6f}", f"{lr:.3g}",
                                         f"{time.monotonic() - self.start:.1f}"])


class ExportEMA(L.Callback):
    """Writes the EMA UNet (diffusers format: config.json + safetensors) every ``every`` steps and at the end,
    so a run stopped by its time budget, or killed, still leaves a usable checkpoint."""

    def __init__(self, directory: Path, every: int):
        self.directory, self.every = Path(directory), every

    def export(self, pl_module: DDPMPrior) -> None:
        pl_module.ema.save_pretrained(self.directory, safe_serialization=True)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self.export(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.export(pl_module)


def read_loss_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, losses, wall seconds) from a :class:`LossCSV` file."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (np.array([int(r["step"]) for r in rows]), np.array([float(r["loss"]) for r in rows]),
            np.array([float(r["wall_s"]) for r in rows]))


def smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the per-step DDPM loss is very noisy because t is random)."""
    window = max(1, min(window, len(values)))
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (cumulative[i + 1] - cumulative[lo]) / (i + 1 - lo)
    return out


def plot_loss(csv_path: Path, png_path: Path, window: int = 50) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, _ = read_loss_csv(csv_path)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.plot(steps, losses, lw=0.5, alpha=0.35, label="per step")
    ax.plot(steps, smoothed(losses, window), lw=1.5, label=f"mean of last {window}")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("ε MSE")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def final_loss(csv_path: Path, window: int = 100) -> float:
    _, losses, _ = read_loss_csv(csv_path)
    return float(losses[-window:].mean())


def seconds_to_text(seconds: float) -> str:
    minutes = math.floor(seconds / 60)
    return f"{minutes} min {seconds - 60 * minutes:.0f} s"
