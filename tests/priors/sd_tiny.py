"""Tiny Stable Diffusion pipelines built offline from configs, for tests.

Same component classes and structural choices as the real checkpoints (x4 upscaler: 7-channel UNet with a
1000-way noise-level class embedding and cross-attention-only high-resolution blocks, a 3-block VAE that
downsamples by 4, DDIM v-prediction + DDPM low-res scheduler; SD 2 inpainting: 9-channel UNet, 4-block VAE
that downsamples by 8, PNDM ε-prediction), at a size that runs in milliseconds on a CPU. Weights are random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionUpscalePipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "sd" / "tokenizer"
TEXT_DIM = 32

# scheduler/ and low_res_scheduler/scheduler_config.json of stabilityai/stable-diffusion-x4-upscaler (x4-upscaling.yaml:
# linear_start 1e-4, linear_end 0.02, v-parameterisation; LDM's "linear" schedule is diffusers' "scaled_linear").
X4_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "v_prediction",
}
X4_LOW_RES_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "scaled_linear",
    "clip_sample": True,
    "variance_type": "fixed_small",
    "prediction_type": "epsilon",
}
# scheduler/scheduler_config.json of stabilityai/stable-diffusion-2-inpainting.
INPAINT_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(TOKENIZER_DIR, local_files_only=True, model_max_length=77)


def tiny_text_encoder(tokenizer: CLIPTokenizer, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config).eval()


def tiny_upscaler_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=7,  # 4 latent + 3 noised low-resolution RGB
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        only_cross_attention=(True, True, False),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        use_linear_projection=True,
        num_class_embeds=1000,  # the noise level, as in the real x4 upscaler
        norm_num_groups=8,
    )


def tiny_inpaint_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=9,  # 4 noisy latent + 1 mask + 4 masked-image latent
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        use_linear_projection=True,
        norm_num_groups=8,
    )


def tiny_vae(levels: int, scaling_factor: float, seed: int = 0) -> AutoencoderKL:
    """``levels`` blocks: the latent is 2**(levels-1) times smaller than the image."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=(16,) * (levels - 1) + (32,),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
        scaling_factor=scaling_factor,
    )


def tiny_upscaler(seed: int = 0) -> StableDiffusionUpscalePipeline:
    tokenizer = tiny_tokenizer()
    return StableDiffusionUpscalePipeline(
        vae=tiny_vae(levels=3, scaling_factor=0.08333, seed=seed),
        text_encoder=tiny_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        unet=tiny_upscaler_unet(seed),
        low_res_scheduler=DDPMScheduler(**X4_LOW_RES_SCHEDULER),
        scheduler=DDIMScheduler(**X4_SCHEDULER),
        max_noise_level=350,
    )


def tiny_inpainter(seed: int = 0) -> StableDiffusionInpaintPipeline:
    tokenizer = tiny_tokenizer()
    return StableDiffusionInpaintPipeline(
        vae=tiny_vae(levels=4, scaling_factor=0.18215, seed=seed),
        text_encoder=tiny_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        unet=tiny_inpaint_unet(seed),
        scheduler=PNDMScheduler(**INPAINT_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def saved(pipeline, directory: Path) -> Path:
    """Write ``pipeline`` in the diffusers layout (what a hub snapshot looks like) and return the directory."""
    pipeline.save_pretrained(directory)
    return directory
