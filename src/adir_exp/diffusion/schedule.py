"""The training noise schedule β₁…β_T (taken from diffusers) and guided-diffusion's timestep respacing."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler


class NoiseSchedule:
    """β_t of the forward process a model was trained with; ADM and our prior use linear 1e-4…0.02 over 1000 steps.

    The betas come from diffusers' ``DDPMScheduler`` so that every schedule diffusers knows is available; kept in
    float64 because ᾱ_t products lose precision in float32 near t = T.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
    ):
        scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
        )
        self.num_train_timesteps = num_train_timesteps
        self.betas = scheduler.betas.to(torch.float64)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε at training timesteps ``t`` (one per batch item, or one for all).

        The forward process every training loss and test uses; diffusers' ``DDPMScheduler.add_noise`` computes
        the same from a float32 table (tests/diffusion check they agree).
        """
        abar = self.alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


def space_timesteps(num_timesteps: int, section_counts: int | str | None) -> list[int]:
    """Which original timesteps a respaced sampler visits, exactly as guided-diffusion's ``space_timesteps``.

    ``section_counts`` is an int (e.g. 250: evenly strided), a comma list of per-section counts ("10,15,20"), or
    "ddimN" (DDIM's fixed stride). ``None`` keeps all steps.
    """
    if section_counts is None:
        return list(range(num_timesteps))
    if isinstance(section_counts, str) and section_counts.startswith("ddim"):
        desired = int(section_counts[len("ddim") :])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == desired:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"cannot create exactly {desired} steps with an integer stride")
    counts = [int(c) for c in str(section_counts).split(",")]
    size_per = num_timesteps // len(counts)
    extra = num_timesteps % len(counts)
    start = 0
    chosen: list[int] = []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide section of {size} steps into {count}")
        frac_stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            chosen.append(start + round(cur))
            cur += frac_stride
        start += size
    return sorted(set(chosen))
