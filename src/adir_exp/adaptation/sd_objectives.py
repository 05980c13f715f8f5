"""ADIR-SD adaptation objectives: the latent-diffusion training loss of the x4 upscaler and of SD inpainting.

Both fine-tune only the UNet (through LoRA) with the loss the models were trained with: encode the image with
the frozen VAE, noise the latent at a uniform random timestep with the model's own training schedule, and
regress the target its scheduler declares (``prediction_type``: ε, v or x0). What differs is the conditioning
each UNet expects next to the noisy latent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from adir_exp.adaptation.objective import AdaptationObjective, lpips_network
from adir_exp.operators import LinearOperator

MaskSampler = Callable[[int, int, int, torch.Generator | None], torch.Tensor]


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) drawn on the generator's device (a CPU generator may serve a CUDA run), then moved."""
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


class LatentDiffusionObjective(AdaptationObjective):
    """What the SD objectives share: frozen VAE, training noise schedule, targets, cached text embeddings."""

    def __init__(
        self, pipeline: DiffusionPipeline, gradient_checkpointing: bool = False, timesteps: str = "batch"
    ) -> None:
        super().__init__()
        if timesteps not in ("batch", "sample"):
            raise ValueError(f"timesteps must be 'batch' (one t per batch, the paper) or 'sample', got {timesteps!r}")
        self.timesteps = timesteps
        self.unet = pipeline.unet
        self.vae = pipeline.vae.requires_grad_(False)
        # Training adds noise with the DDPM form of the sampling scheduler's betas (diffusers' training recipe).
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.prediction_type: str = pipeline.scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.perceptual: nn.Module | None = None
        if gradient_checkpointing:  # recompute activations in backward: UNet and (for image-space losses) decoder
            self.unet.enable_gradient_checkpointing()
            self.vae.enable_gradient_checkpointing()

    @property
    def network(self) -> nn.Module:
        return self.unet

    def train(self, mode: bool = True) -> LatentDiffusionObjective:
        """Only the UNet follows ``mode``; the frozen parts (VAE, perceptual network) stay in eval."""
        super().train(mode)
        self.vae.eval()
        if self.perceptual is not None:
            self.perceptual.eval()
        return self

    @staticmethod
    def encode_prompt(pipeline: DiffusionPipeline, prompt: str) -> torch.Tensor:
        """(1, L, D) text embeddings, computed once: the text encoder is frozen and needed no further."""
        device = pipeline.text_encoder.device
        with torch.no_grad():
            embeds, _ = pipeline.encode_prompt(prompt, device, 1, False)
        return embeds.detach()

    def check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % self.vae_factor or width % self.vae_factor:
            raise ValueError(
                f"{type(self).__name__}: crop sides must be multiples of {self.vae_factor} (the VAE's downsampling), "
                f"got {height}×{width}"
            )

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Scaled VAE latents of images in [−1, 1], sampled from the posterior as in LDM training."""
        posterior = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return posterior.sample(generator).float() * self.scaling_factor

    def noised(
        self, latents: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, ε, z_t) with t uniform over the training timesteps: one t for the whole batch (``timesteps="batch"``,
        as the paper adapts) or one per sample (diffusers' training recipe)."""
        steps = self.noise_scheduler.config.num_train_timesteps
        draws = 1 if self.timesteps == "batch" else latents.shape[0]
        t = (_uniform((draws,), generator, latents.device) * steps).long().clamp_max(steps - 1)
        t = t.expand(latents.shape[0])
        noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        return t, noise, self.noise_scheduler.add_noise(latents, noise, t)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, t)
        return latents

    def predicted_latents(self, noisy: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x̂0 from the UNet output, for losses in image space."""
        alpha_bar = self.noise_scheduler.alphas_cumprod.to(noisy.device)[t].view(-1, 1, 1, 1)
        if self.prediction_type == "epsilon":
            return (noisy - (1 - alpha_bar).sqrt() * output) / alpha_bar.sqrt()
        if self.prediction_type == "v_prediction":
            return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * output
        return output

    def predict(self, latent_input: torch.Tensor, t: torch.Tensor, text: torch.Tensor, **conditioning) -> torch.Tensor:
        dtype = self.unet.dtype
        return self.unet(latent_input.to(dtype), t, encoder_hidden_states=text.to(dtype), **conditioning).sample.float()


class SDUpscaleObjective(LatentDiffusionObjective):
    """ADIR-SD super-resolution: teach the x4 upscaler's UNet the retrieved high-resolution images.

    Each HR crop x (in [−1, 1]) gives its own conditioning the way the task degrades images: y = A x with the
    task's operator, noised by the pipeline's ``low_res_scheduler`` at ``noise_level`` and passed both as the
    3 extra input channels and as ``class_labels`` (exactly what the pipeline does at inference); the text is
    the empty prompt. The latent z0 = s·E(x) is noised and the UNet regresses the scheduler's target (v for
    the x4 upscaler). ``lpips_weight`` > 0 adds LPIPS between the decoded x̂0 (clipped to [−1, 1]) and x, as
    the paper does with weight 0.1; it backpropagates through the VAE decoder at full crop resolution, which
    costs more than the UNet itself: about 2.5× the step's compute and 3.5–4× its activation memory
    (docs/stable_diffusion.md).
    ``perceptual`` replaces the LPIPS network (any module mapping two [−1, 1] batches to distances).
    """

    def __init__(
        self,
        pipeline: DiffusionPipeline,
        operator: LinearOperator,
        noise_level: int = 20,
        lpips_weight: float = 0.1,
        lpips_net: str = "alex",
        perceptual: nn.Module | None = None,
        gradient_checkpointing: bool = False,
        timesteps: str = "batch",
    ) -> None:
        super().__init__(pipeline, gradient_checkpointing, timesteps)
        max_level = pipeline.config.max_noise_level
        if not 0 <= noise_level <= max_level:
            raise ValueError(f"noise_level must lie in [0, {max_level}], got {noise_level}")
        self.operator = operator
        self.low_res_scheduler = pipeline.low_res_scheduler
        self.noise_level = int(noise_level)
        self.lpips_weight = float(lpips_weight)
        if self.lpips_weight > 0 and perceptual is None:
            perceptual = lpips_network(lpips_net)
        self.perceptual = perceptual.requires_grad_(False).eval() if self.lpips_weight > 0 else None
        self.register_buffer("empty_prompt", self.encode_prompt(pipeline, ""), persistent=False)

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        self.check_images(images)
        batch = images.shape[0]
        with torch.no_grad():
            low_res = self.operator.A(images).float()
            latents = self.encode(images, generator)
            if low_res.shape[-2:] != latents.shape[-2:]:
                raise ValueError(
                    f"the operator maps {tuple(images.shape[-2:])} crops to {tuple(low_res.shape[-2:])}, but the "
                    f"upscaler's latents are {tuple(latents.shape[-2:])}: it needs a ×{self.vae_factor} downsampling"
                )
            levels = torch.full((batch,), self.noise_level, dtype=torch.long, device=images.device)
            low_res_noise = randn_tensor(low_res.shape, generator=generator, device=images.device, dtype=low_res.dtype)
            low_res = self.low_res_scheduler.add_noise(low_res, low_res_noise, levels)
        t, noise, noisy = self.noised(latents, generator)
        output = self.predict(
            torch.cat([noisy, low_res], dim=1), t, self.empty_prompt.expand(batch, -1, -1), class_labels=levels
        )
        mse = F.mse_loss(output, self.target(latents, noise, t))
        terms = {"mse": mse}
        total = mse
        if self.perceptual is not None:
            estimate = self.predicted_latents(noisy, output, t) / self.scaling_factor
            decoded = self.vae.decode(estimate.to(self.vae.dtype)).sample.float().clamp(-1, 1)
            terms["lpips"] = self.perceptual(decoded, images.float()).mean()
            total = total + self.lpips_weight * terms["lpips"]
        return {"loss": total, **terms}


@dataclass
class RandomMasks:
    """Random hole masks of the kind SD inpainting was trained on: rectangles and thick brush strokes.

    Each mask holds 1 to ``max_shapes`` shapes, each a box with probability ``box_probability`` (sides a
    fraction in ``size`` of the image side) or else a polyline stroke of 2–4 segments (segment length in
    ``size``, width in ``stroke_width``, fractions of the shorter side). Returns (B, 1, H, W) with 1 = hole.
    """

    box_probability: float = 0.5
    max_shapes: int = 3
    size: tuple[float, float] = (0.1, 0.5)
    stroke_width: tuple[float, float] = (0.05, 0.15)

    def __call__(self, batch: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        masks = torch.zeros(batch, 1, height, width)
        ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        short = min(height, width)
        zero, corner = torch.zeros(2), torch.tensor([float(height), float(width)])

        def draw() -> float:
            return _uniform((), generator, torch.device("cpu")).item()

        def between(bounds: tuple[float, float]) -> float:
            return bounds[0] + (bounds[1] - bounds[0]) * draw()

        for mask in masks:
            for _ in range(1 + int(draw() * self.max_shapes)):
                if draw() < self.box_probability:
                    box_h, box_w = round(between(self.size) * height), round(between(self.size) * width)
                    top, left = int(draw() * (height - box_h + 1)), int(draw() * (width - box_w + 1))
                    mask[0, top : top + box_h, left : left + box_w] = 1
                    continue
                radius = between(self.stroke_width) * short / 2
                point = torch.tensor([draw() * height, draw() * width])
                for _ in range(2 + int(draw() * 3)):
                    angle, length = draw() * 2 * math.pi, between(self.size) * short
                    step = length * torch.tensor([math.sin(angle), math.cos(angle)])
                    end = (point + step).clamp(min=zero, max=corner)
                    mask[0][_segment_distance(ys, xs, point, end) <= radius] = 1
                    point = end
        return masks


def _segment_distance(ys: torch.Tensor, xs: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Distance of every pixel centre to the segment start→end (a stroke is the set within its radius)."""
    direction = end - start
    length2 = direction.pow(2).sum().clamp_min(1e-12)
    along = (((ys - start[0]) * direction[0] + (xs - start[1]) * direction[1]) / length2).clamp(0, 1)
    return ((ys - start[0] - along * direction[0]).pow(2) + (xs - start[1] - along * direction[1]).pow(2)).sqrt()


class SDInpaintObjective(LatentDiffusionObjective):
    """ADIR-SD editing: teach SD inpainting's UNet the images retrieved for the edit's text query.

    Each image x (in [−1, 1]) gets a random hole mask m (1 = hole); the UNet sees its 9-channel input
    [z_t, m↓, s·E(x ⊙ (1 − m))] (mask downsampled to the latent grid with nearest neighbour, as the pipeline
    does) and the prompt's embeddings, replaced by the empty prompt's with probability ``text_dropout`` so
    classifier-free guidance keeps working after adaptation. Loss: the scheduler's target (ε for SD 2).
    """

    def __init__(
        self,
        pipeline: DiffusionPipeline,
        prompt: str,
        text_dropout: float = 0.1,
        mask_sampler: MaskSampler | None = None,
        gradient_checkpointing: bool = False,
        timesteps: str = "batch",
    ) -> None:
        super().__init__(pipeline, gradient_checkpointing, timesteps)
        if pipeline.unet.config.in_channels != 9:
            raise ValueError(f"needs an inpainting UNet (9 input channels), got {pipeline.unet.config.in_channels}")
        if not 0.0 <= text_dropout <= 1.0:
            raise ValueError(f"text_dropout must lie in [0, 1], got {text_dropout}")
        self.text_dropout = float(text_dropout)
        self.mask_sampler = mask_sampler or RandomMasks()
        self.register_buffer("prompt_embeds", self.encode_prompt(pipeline, prompt), persistent=False)
        self.register_buffer("empty_prompt", self.encode_prompt(pipeline, ""), persistent=False)

    def loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        self.check_images(images)
        batch, _, height, width = images.shape
        holes = self.mask_sampler(batch, height, width, generator).to(images)
        with torch.no_grad():
            latents = self.encode(images, generator)
            masked_latents = self.encode(images * (1 - holes), generator)
            mask_latent = F.interpolate(holes, size=latents.shape[-2:])
        dropped = _uniform((batch,), generator, images.device) < self.text_dropout
        text = torch.where(dropped.view(-1, 1, 1), self.empty_prompt, self.prompt_embeds)
        t, noise, noisy = self.noised(latents, generator)
        output = self.predict(torch.cat([noisy, mask_latent, masked_latents], dim=1), t, text)
        mse = F.mse_loss(output, self.target(latents, noise, t))
        return {"loss": mse, "mse": mse}
