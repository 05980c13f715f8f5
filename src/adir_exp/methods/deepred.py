"""DeepRED (Mataev, Elad & Milanfar 2019, "DeepRED: Deep Image Prior Powered by RED"), the paper's "DeepRED" rows
of Tables 2–4: a deep image prior x = T_θ(z) regularised by denoising (RED), solved by ADMM without a pretrained
network and without differentiating the denoiser.

ADMM on min ½‖A T_θ(z) − y‖² + (λ/2) xᵀ(x − f(x)) s.t. x = T_θ(z), with scaled dual u (the authors' code,
github.com/GaryMataev/DeepRED, ``train_via_admm``), per iteration:

1. one Adam step on θ for mse(A T_θ(z + n), y) + μ·mse(T_θ(z + n), x − u), n ~ N(0, noise²) fresh each step;
2. x ← (λ f(x) + μ(T_θ(z) + u)) / (λ + μ), clipped to [0, 1] (the fixed-point rule), f(x) refreshed every
   ``denoise_every`` iterations;
3. u ← u + T_θ(z) − x;

and the result is x − u. Defaults are the authors' super-resolution notebook (2000 iterations, Adam lr 1e-3,
λ = 0.05, μ = 0.06, σ_f = 5, input noise 0.02, x₀ = 0; the skip network of Deep Image Prior: 5 scales of 128
channels, 4-channel skips, 32 input channels). Their deblurring notebook uses 30000 iterations, lr 4e-3 (×0.9 every
1000), λ = 0.02, μ = 0.04, σ_f = 3, noise 0.01 and x₀ = y (docs/baselines.md). Differences from that
code: the data term uses the task's own operator A (the notebook's SR uses a Lanczos-2 downsampler); the denoiser
runs in line rather than in a thread one refresh behind; the RED engine is non-local means (the paper's SR and
deblurring results use BM3D through MATLAB; its denoising notebook uses scikit-image's NLM, as here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from adir_exp.methods.base import Estimate, Method

ImageDenoiser = Callable[[torch.Tensor, float], torch.Tensor]  # (C, H, W) in [0, 1], σ on 0–255 -> denoised


class NonLocalMeans:
    """scikit-image's non-local means per channel, with the DeepRED code's settings: h = 0.6σ (fast mode) or 0.8σ,
    5×5 patches, 13×13 search window; σ on the 0–255 scale."""

    def __init__(self, fast_mode: bool = True, patch_size: int = 5, patch_distance: int = 6) -> None:
        self.fast_mode = fast_mode
        self.patch_size = patch_size
        self.patch_distance = patch_distance

    def __call__(self, image: torch.Tensor, sigma: float) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means

        s = sigma / 255.0
        h = (0.6 if self.fast_mode else 0.8) * s
        channels = [
            denoise_nl_means(channel, h=h, sigma=s, fast_mode=self.fast_mode, patch_size=self.patch_size,
                             patch_distance=self.patch_distance, channel_axis=None)
            for channel in image.detach().cpu().double().numpy()
        ]  # fmt: skip
        return torch.from_numpy(np.stack(channels)).to(image)


def _conv(channels_in: int, channels_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """Reflection-padded convolution, batch norm, LeakyReLU: the unit of Deep Image Prior's skip network."""
    return [
        nn.ReflectionPad2d(kernel // 2), nn.Conv2d(channels_in, channels_out, kernel, stride),
        nn.BatchNorm2d(channels_out), nn.LeakyReLU(0.2),
    ]  # fmt: skip


class SkipNetwork(nn.Module):
    """Deep Image Prior's encoder–decoder with skip connections (Ulyanov et al. 2018, ``models/skip.py``): per scale
    a strided 3×3 down block, a 1×1 skip branch, and bilinear upsampling back, a sigmoid at the output.
    Image sides must be multiples of 2^scales."""

    def __init__(self, input_depth: int, channels: int, skip_channels: int, scales: int, out_channels: int = 3):
        super().__init__()
        self.down = nn.ModuleList()
        self.skip = nn.ModuleList()
        self.up = nn.ModuleList()
        depth = input_depth
        for _ in range(scales):
            self.skip.append(nn.Sequential(*_conv(depth, skip_channels, 1)))
            self.down.append(nn.Sequential(*_conv(depth, channels, 3, stride=2), *_conv(channels, channels, 3)))
            depth = channels
        for _ in range(scales):
            self.up.append(
                nn.Sequential(nn.BatchNorm2d(skip_channels + channels), *_conv(skip_channels + channels, channels, 3),
                              *_conv(channels, channels, 1))
            )  # fmt: skip
        self.output = nn.Conv2d(channels, out_channels, 1)
        self.scales = scales

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips, h = [], z
        for skip, down in zip(self.skip, self.down):
            skips.append(skip(h))
            h = down(h)
        for up, skipped in zip(self.up, reversed(skips)):
            h = nn.functional.interpolate(h, size=skipped.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([skipped, h], dim=1))
        return torch.sigmoid(self.output(h))


class DeepRED(Method):
    """DeepRED on the task's operator (see the module docstring for the iteration and its defaults)."""

    uses_prior = False

    def __init__(
        self,
        denoiser: ImageDenoiser | None = None,
        iterations: int = 2000,
        lr: float = 1e-3,
        lr_decay: float = 1.0,
        lr_decay_every: int = 1000,
        regularisation: float = 0.05,
        penalty: float = 0.06,
        denoiser_sigma: float = 5.0,
        denoise_every: int = 10,
        input_noise: float = 0.02,
        input_depth: int = 32,
        channels: int = 128,
        skip_channels: int = 4,
        scales: int = 5,
        initial: Literal["zeros", "measurement"] = "zeros",
        progress: bool = True,
    ) -> None:
        if iterations < 1 or denoise_every < 1 or scales < 1:
            raise ValueError(
                f"DeepRED needs iterations, denoise_every, scales ≥ 1, got {iterations}, {denoise_every}, {scales}"
            )
        if initial not in ("zeros", "measurement"):
            raise ValueError(f"DeepRED: initial must be 'zeros' or 'measurement', got {initial!r}")
        self.denoiser = denoiser or NonLocalMeans()
        self.iterations = iterations
        self.lr, self.lr_decay, self.lr_decay_every = lr, lr_decay, lr_decay_every
        self.regularisation = regularisation  # λ ("beta" in the authors' code)
        self.penalty = penalty  # μ, the ADMM penalty
        self.denoiser_sigma = denoiser_sigma
        self.denoise_every = denoise_every
        self.input_noise = input_noise
        self.network = {"input_depth": input_depth, "channels": channels, "skip_channels": skip_channels,
                        "scales": scales}  # fmt: skip
        self.initial = initial
        self.progress = progress

    def reconstruct(self, problem, prior=None, retriever=None) -> Estimate:
        y = problem.y_in_unit_range()
        start = problem.y_as_image().to(problem.device) if self.initial == "measurement" else None
        generator = problem.generator()
        images = [
            self._solve(y[i : i + 1], problem.physics.operator, problem.image_shape[1:], generator,
                        None if start is None else start[i : i + 1])
            for i in range(y.shape[0])
        ]  # fmt: skip
        return Estimate(torch.cat(images).clamp(0.0, 1.0).cpu())

    def _solve(self, y, operator, image_shape, generator, start) -> torch.Tensor:
        channels, height, width = image_shape
        multiple = 2 ** self.network["scales"]
        if height % multiple or width % multiple or min(height, width) < 2 * multiple:
            raise ValueError(
                f"DeepRED with {self.network['scales']} scales needs sides that are multiples of {multiple} and at "
                f"least {2 * multiple} (batch norm at the coarsest scale), got {height}×{width}"
            )
        device = y.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator, device=generator.device)))
            net = SkipNetwork(out_channels=channels, **self.network).to(device)
            z = 0.1 * torch.rand(1, self.network["input_depth"], height, width, device=device)  # DIP's 'noise' input
            optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
            schedule = torch.optim.lr_scheduler.StepLR(optimizer, self.lr_decay_every, gamma=self.lr_decay)
            x = torch.zeros(1, *image_shape, device=device) if start is None else start.clone()
            u = torch.zeros_like(x)
            denoised = x.clone()
            lam, mu = self.regularisation, self.penalty
            for i in tqdm(range(1, self.iterations + 1), desc="DeepRED", unit="it", disable=not self.progress,
                          leave=False, position=1, dynamic_ncols=True):  # fmt: skip
                optimizer.zero_grad()
                out = net(z + self.input_noise * torch.randn_like(z))
                loss = nn.functional.mse_loss(operator.A(out), y) + mu * nn.functional.mse_loss(out, x - u)
                loss.backward()
                optimizer.step()
                schedule.step()
                out = out.detach()
                if i % self.denoise_every == 0:
                    denoised = self.denoiser(x[0], self.denoiser_sigma)[None]
                x = ((lam * denoised + mu * (out + u)) / (lam + mu)).clamp(0.0, 1.0)
                u = u + out - x
        return x - u
