"""ADIR-SD adaptation on tiny pipelines: the losses' conditioning and targets, then adapt → infer end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning import Trainer
from torch import nn

from adir_exp.adaptation.lora import lora_parameters
from adir_exp.adaptation.module import LoRAAdaptation
from adir_exp.adaptation.sd_objectives import (
    RandomMasks,
    SDInpaintObjective,
    SDUpscaleObjective,
)
from adir_exp.operators import BicubicDownsample
from adir_exp.priors.stable_diffusion import (
    edit,
    load_sd_inpaint,
    load_sd_upscaler,
    upscale,
)
from adir_exp.weights import MissingWeightsError
from tests.priors.sd_tiny import saved, tiny_inpainter, tiny_upscaler

PROMPT = "a photo of a red car"


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny tensors: OpenMP hand-offs between threads cost far more than the arithmetic on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def crops(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [−1, 1] (low-frequency, like photos rather than white noise)."""
    coarse = torch.rand(count, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1


class UNetInputs:
    """Records what the UNet is called with."""

    def __init__(self, unet: nn.Module) -> None:
        self.calls: list[tuple[tuple, dict]] = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.calls.append((args, kwargs))


class MeanAbsolute(nn.Module):
    """A parameter-free stand-in for LPIPS: mean |a − b| per image."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean(dim=(1, 2, 3))


def evaluation_loss(objective: nn.Module, images: torch.Tensor) -> float:
    """The loss on a fixed set of (t, noise, mask, dropout) draws: comparable before and after adaptation."""
    with torch.no_grad():
        return sum(objective.loss(images, torch.Generator().manual_seed(s))["loss"].item() for s in range(6)) / 6


def fit(module: LoRAAdaptation, images: torch.Tensor, steps: int) -> None:
    """A few Adam steps on a fixed image set, as ``adir-run`` drives LoRAAdaptation (fresh draws each step)."""
    trainer = Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([images] * steps, batch_size=None))


def snapshot(*modules: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(modules) for k, v in m.state_dict().items()}


def changed(before: dict[str, torch.Tensor], *modules: nn.Module) -> set[str]:
    after = snapshot(*modules)
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.integration
@pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")  # the frozen VAE, on purpose
def test_upscale_adapt_then_infer_end_to_end(tmp_path: Path) -> None:
    pipeline = load_sd_upscaler(saved(tiny_upscaler(), tmp_path / "x4"), device="cpu")
    objective = SDUpscaleObjective(pipeline, BicubicDownsample(4), noise_level=20, lpips_weight=0.0)
    assert objective.network is pipeline.unet
    images = crops(4, 32)
    plain_loss = evaluation_loss(objective, images)
    module = LoRAAdaptation(objective, rank=4, alpha=4, lr=1e-2)
    before_loss = evaluation_loss(objective, images)
    assert before_loss == pytest.approx(plain_loss, rel=1e-5)  # fresh adapters are a no-op
    before = snapshot(pipeline.unet, pipeline.vae, pipeline.text_encoder)
    fit(module, images, steps=20)
    after_loss = evaluation_loss(objective, images)
    assert after_loss < 0.8 * before_loss, (before_loss, after_loss)
    moved = changed(before, pipeline.unet, pipeline.vae, pipeline.text_encoder)
    assert moved and all("lora_" in name for name in moved)
    assert any("lora_B" in name for name in moved)

    y = torch.rand(1, 3, 8, 8)
    high = upscale(pipeline, y, num_inference_steps=2, noise_level=20, generator=torch.Generator().manual_seed(0))
    assert high.shape == (1, 3, 32, 32) and torch.isfinite(high).all()


@pytest.mark.integration
@pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")  # the frozen VAE, on purpose
def test_inpaint_adapt_then_edit_end_to_end(tmp_path: Path) -> None:
    pipeline = load_sd_inpaint(saved(tiny_inpainter(), tmp_path / "inpaint"), device="cpu")
    objective = SDInpaintObjective(pipeline, PROMPT, text_dropout=0.1)
    images = crops(3, 64)
    module = LoRAAdaptation(objective, rank=4, alpha=4, lr=1e-2)
    before_loss = evaluation_loss(objective, images)
    before = snapshot(pipeline.unet, pipeline.vae, pipeline.text_encoder)
    fit(module, images, steps=20)
    after_loss = evaluation_loss(objective, images)
    assert after_loss < 0.8 * before_loss, (before_loss, after_loss)
    moved = changed(before, pipeline.unet, pipeline.vae, pipeline.text_encoder)
    assert moved and all("lora_" in name for name in moved)

    image = (images[:1] + 1) / 2
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:40, 24:56] = 1
    edited = edit(pipeline, image, mask, PROMPT, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert edited.shape == image.shape and torch.isfinite(edited).all()


@pytest.fixture(scope="module")
def upscaler():
    return tiny_upscaler()


@pytest.fixture(scope="module")
def inpainter():
    return tiny_inpainter()


def test_upscale_conditioning_is_the_task_degradation(upscaler) -> None:
    """Low-res channels = A x (noise level 0 leaves it almost clean), class label = level, text = empty prompt."""
    objective = SDUpscaleObjective(upscaler, BicubicDownsample(4), noise_level=0, lpips_weight=0.0)
    images = crops(2, 32)
    inputs = UNetInputs(upscaler.unet)
    objective.loss(images, torch.Generator().manual_seed(0))
    inputs.handle.remove()
    (sample, _), kwargs = inputs.calls[0]
    assert sample.shape == (2, 7, 8, 8)
    low_res = BicubicDownsample(4).A(images)
    assert (sample[:, 4:] - low_res).abs().max() < 0.05  # √ᾱ_0 ≈ 0.99995, √(1−ᾱ_0) ≈ 0.01
    assert kwargs["class_labels"].tolist() == [0, 0]
    empty, _ = upscaler.encode_prompt("", torch.device("cpu"), 1, False)
    assert torch.allclose(kwargs["encoder_hidden_states"], empty.expand(2, -1, -1))


def test_upscale_loss_regresses_the_velocity(upscaler) -> None:
    objective = SDUpscaleObjective(upscaler, BicubicDownsample(4), lpips_weight=0.0)
    assert objective.prediction_type == "v_prediction"
    latents, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    t = torch.tensor([0, 500, 999])
    alpha_bar = objective.noise_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    expected = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents
    assert torch.allclose(objective.target(latents, noise, t), expected, atol=1e-6)
    noisy = objective.noise_scheduler.add_noise(latents, noise, t)
    for kind in ("epsilon", "v_prediction", "sample"):  # a perfect prediction of any kind gives back x0
        objective.prediction_type = kind
        recovered = objective.predicted_latents(noisy, objective.target(latents, noise, t), t)
        assert torch.allclose(recovered, latents, atol=1e-3), kind


def test_loss_is_reproducible_from_the_generator(upscaler) -> None:
    objective = SDUpscaleObjective(upscaler, BicubicDownsample(4), lpips_weight=0.0)
    images = crops(2, 32)
    first = objective.loss(images, torch.Generator().manual_seed(3))["loss"]
    again = objective.loss(images, torch.Generator().manual_seed(3))["loss"]
    other = objective.loss(images, torch.Generator().manual_seed(4))["loss"]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_lpips_term_is_added_and_reaches_the_unet() -> None:
    pipeline = tiny_upscaler()
    objective = SDUpscaleObjective(pipeline, BicubicDownsample(4), lpips_weight=0.5, perceptual=MeanAbsolute())
    terms = objective.loss(crops(2, 32), torch.Generator().manual_seed(0))
    assert set(terms) == {"loss", "mse", "lpips"}
    assert torch.allclose(terms["loss"], terms["mse"] + 0.5 * terms["lpips"])
    terms["lpips"].backward()
    assert pipeline.unet.conv_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in pipeline.vae.parameters())  # frozen, yet the gradient passed through it


def test_default_lpips_without_backbone_weights_is_a_clear_error(upscaler, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError, match="adir-weights provision"):
        SDUpscaleObjective(upscaler, BicubicDownsample(4))


def test_frozen_parts_stay_in_eval_mode(upscaler) -> None:
    objective = SDUpscaleObjective(upscaler, BicubicDownsample(4), lpips_weight=0.1, perceptual=MeanAbsolute())
    objective.train()
    assert objective.unet.training and not objective.vae.training and not objective.perceptual.training


def test_upscale_objective_rejects_mismatched_settings(upscaler) -> None:
    with pytest.raises(ValueError, match="×4 downsampling"):
        SDUpscaleObjective(upscaler, BicubicDownsample(2), lpips_weight=0.0).loss(crops(1, 32))
    with pytest.raises(ValueError, match="multiples of 4"):
        SDUpscaleObjective(upscaler, BicubicDownsample(4), lpips_weight=0.0).loss(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="noise_level"):
        SDUpscaleObjective(upscaler, BicubicDownsample(4), noise_level=351, lpips_weight=0.0)


def test_gradient_checkpointing_gives_the_same_adapter_gradients() -> None:
    """Through the UNet and, for the LPIPS term, the VAE decoder."""
    grads = []
    for checkpointing in (False, True):
        pipeline = tiny_upscaler()
        objective = SDUpscaleObjective(
            pipeline, BicubicDownsample(4), perceptual=MeanAbsolute(), gradient_checkpointing=checkpointing
        )
        LoRAAdaptation(objective, rank=2, alpha=2).train()
        assert pipeline.unet.is_gradient_checkpointing == pipeline.vae.is_gradient_checkpointing == checkpointing
        objective.loss(crops(1, 32), torch.Generator().manual_seed(0))["loss"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in lora_parameters(pipeline.unet)]))
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)


def test_inpaint_unet_input_layout(inpainter) -> None:
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., :32, :] = 1

    def top_half(batch: int, height: int, width: int, generator: torch.Generator | None) -> torch.Tensor:
        return hole.expand(batch, -1, height, width)

    objective = SDInpaintObjective(inpainter, PROMPT, text_dropout=0.0, mask_sampler=top_half)
    images = crops(2, 64)
    inputs = UNetInputs(inpainter.unet)
    objective.loss(images, torch.Generator().manual_seed(0))
    inputs.handle.remove()
    (sample, _), kwargs = inputs.calls[0]
    assert sample.shape == (2, 9, 8, 8)
    assert torch.equal(sample[:, 4:5], F.interpolate(hole, size=(8, 8)).expand(2, -1, -1, -1))
    masked = inpainter.vae.encode(images * (1 - hole)).latent_dist.mean * inpainter.vae.config.scaling_factor
    posterior_std = inpainter.vae.encode(images * (1 - hole)).latent_dist.std * inpainter.vae.config.scaling_factor
    assert ((sample[:, 5:] - masked).abs() <= 6 * posterior_std + 1e-5).all()  # sampled from E(x ⊙ (1 − m))
    prompt, _ = inpainter.encode_prompt(PROMPT, torch.device("cpu"), 1, False)
    assert torch.allclose(kwargs["encoder_hidden_states"], prompt.expand(2, -1, -1))


@pytest.mark.parametrize("dropout, expected", [(1.0, ""), (0.0, PROMPT)])
def test_text_dropout_swaps_in_the_empty_prompt(inpainter, dropout: float, expected: str) -> None:
    objective = SDInpaintObjective(inpainter, PROMPT, text_dropout=dropout)
    inputs = UNetInputs(inpainter.unet)
    objective.loss(crops(3, 64), torch.Generator().manual_seed(0))
    inputs.handle.remove()
    embeds, _ = inpainter.encode_prompt(expected, torch.device("cpu"), 1, False)
    assert torch.allclose(inputs.calls[0][1]["encoder_hidden_states"], embeds.expand(3, -1, -1))


def test_text_dropout_rate() -> None:
    pipeline = tiny_inpainter()

    def no_holes(batch: int, height: int, width: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.zeros(batch, 1, height, width)

    objective = SDInpaintObjective(pipeline, PROMPT, text_dropout=0.3, mask_sampler=no_holes)
    inputs = UNetInputs(pipeline.unet)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(25):
            objective.loss(crops(8, 16), generator)  # 2×2 latents: only the draws matter here
    inputs.handle.remove()
    states = torch.cat([kwargs["encoder_hidden_states"] for _, kwargs in inputs.calls])
    dropped = torch.isclose(states, objective.empty_prompt).flatten(1).all(dim=1).float().mean().item()
    assert 0.2 < dropped < 0.4


def test_inpaint_objective_needs_an_inpainting_unet(upscaler) -> None:
    with pytest.raises(ValueError, match="9 input channels"):
        SDInpaintObjective(upscaler, PROMPT)


def test_random_masks() -> None:
    sampler = RandomMasks()
    masks = sampler(16, 64, 48, torch.Generator().manual_seed(0))
    assert masks.shape == (16, 1, 64, 48)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    coverage = masks.mean(dim=(1, 2, 3))
    assert (coverage > 0).all() and (coverage < 1).all() and coverage.std() > 0
    assert torch.equal(masks, sampler(16, 64, 48, torch.Generator().manual_seed(0)))


def bounding_box(mask: torch.Tensor) -> torch.Tensor:
    """The smallest rectangle of a (H, W) mask that holds all its ones."""
    rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
    return mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def test_random_masks_shapes() -> None:
    boxes = RandomMasks(box_probability=1.0, max_shapes=1)(8, 64, 64, torch.Generator().manual_seed(1))
    for mask in boxes[:, 0]:
        box = bounding_box(mask)
        assert box.all()  # one filled rectangle
        assert 6 <= box.shape[0] <= 32 and 6 <= box.shape[1] <= 32  # sides in [0.1, 0.5] of 64
    strokes = RandomMasks(box_probability=0.0, max_shapes=1)(8, 64, 64, torch.Generator().manual_seed(1))
    assert (strokes.mean(dim=(1, 2, 3)) > 0).all()
    assert not all(bounding_box(mask).all() for mask in strokes[:, 0])  # strokes are not rectangles


def test_one_timestep_per_batch_as_the_paper_adapts_or_one_per_sample() -> None:
    pipeline = tiny_upscaler()
    latents, seed = torch.zeros(6, 4, 8, 8), torch.Generator().manual_seed(0)
    per_batch = SDUpscaleObjective(pipeline, BicubicDownsample(4), lpips_weight=0.0).noised(latents, seed)[0]
    per_sample = SDUpscaleObjective(pipeline, BicubicDownsample(4), lpips_weight=0.0, timesteps="sample").noised(
        latents, torch.Generator().manual_seed(0))[0]
    assert per_batch.shape == per_sample.shape == (6,)
    assert per_batch.unique().numel() == 1 and per_sample.unique().numel() > 1
    with pytest.raises(ValueError, match="one t per batch"):
        SDUpscaleObjective(pipeline, BicubicDownsample(4), lpips_weight=0.0, timesteps="each")
