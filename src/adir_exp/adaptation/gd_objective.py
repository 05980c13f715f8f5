"""ADIR's adaptation loss for pixel-space diffusion (Guided Diffusion / ADM): DDPM ε-loss plus 0.1·LPIPS.

For a batch of clean crops x0 ∈ [−1, 1]: one t ~ U{0, …, T−1} for the whole batch, ε ~ N(0, I),
x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε, and

    loss = ‖ε − ε_θ(x_t, t)‖² (mean)  +  w · LPIPS(x̂0, x0),   x̂0 = clip((x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t, −1, 1)

ε_θ is the first 3 output channels of a learned-variance ADM (the variance head is not trained by this loss).
LPIPS compares the one-step denoised estimate x̂0 with the clean crop, both in [−1, 1] as ``lpips`` expects:
it pulls the network's *prediction* towards the perceptual content of the adaptation images, which the
ε-loss alone weighs evenly across frequencies. At large t, x̂0 is dominated by the amplified ε error
(1/√ᾱ_t ≈ 150 at t = T−1) and the clip bounds it, so the LPIPS term is most informative at small and middle t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adir_exp.adaptation.objective import AdaptationObjective, lpips_network
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models.denoiser import UNetDenoiser


class GDObjective(AdaptationObjective):
    """ε-prediction DDPM loss + ``lpips_weight`` · LPIPS(x̂0, x0) for a ``UNetDenoiser``.

    ``perceptual`` replaces the LPIPS module (tests use one with a random backbone); by default it is built
    from ``lpips_net`` when ``lpips_weight > 0``. It stays frozen and in eval mode (its dropout off) even while
    the adapted network trains.
    """

    def __init__(
        self,
        denoiser: UNetDenoiser,
        schedule: NoiseSchedule,
        lpips_weight: float = 0.1,
        lpips_net: str = "alex",
        perceptual: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(denoiser, UNetDenoiser):
            raise TypeError(f"GDObjective adapts a UNetDenoiser (a diffusers UNet), got {type(denoiser).__name__}")
        self.denoiser = denoiser
        self.lpips_weight = lpips_weight
        self.schedule = schedule
        if perceptual is None and lpips_weight > 0:
            perceptual = lpips_network(lpips_net)
        self.perceptual = perceptual
        if self.perceptual is not None:
            self.perceptual.requires_grad_(False).eval()

    @property
    def network(self) -> nn.Module:
        return self.denoiser.unet

    def train(self, mode: bool = True) -> GDObjective:
        super().train(mode)
        if self.perceptual is not None:
            self.perceptual.eval()
        return self

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        batch = images.shape[0]
        t = torch.randint(0, self.schedule.num_train_timesteps, (1,), generator=generator, device=images.device)
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        x_t = self.schedule.add_noise(images, noise, t)
        eps = self.denoiser(x_t, t.expand(batch)).eps.to(images.dtype)  # the network may run under autocast
        eps_mse = F.mse_loss(eps, noise)
        terms = {"loss": eps_mse, "eps_mse": eps_mse}
        if self.perceptual is not None and self.lpips_weight > 0:
            abar = self.schedule.alphas_cumprod.to(images.device)[t].to(images.dtype)
            x0_hat = ((x_t - (1.0 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1.0, 1.0)
            with torch.autocast(images.device.type, enabled=False):  # LPIPS is part of the loss: images' dtype
                distance = self.perceptual(x0_hat, images).mean()
            terms |= {"loss": eps_mse + self.lpips_weight * distance, "lpips": distance}
        return terms
