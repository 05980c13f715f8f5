"""OpenAI Guided Diffusion (ADM) checkpoints as diffusers ``UNet2DModel``s.

The paper's GD prior is ``256x256_diffusion_uncond.pt`` from openai/guided-diffusion. diffusers has no
converter for it, so this module maps ADM's flags to a ``UNet2DModel`` config and its state dict onto the
diffusers layout. Exactness is proven by tests against fixtures made with the official code: the full
key→shape table of the 256×256 checkpoint, and a tiny ADM whose converted outputs must match to 1e-4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import UNet2DModel

from adir_exp.weights.loading import load_tensors
from adir_exp.weights.registry import MissingWeightsError
from adir_exp.weights.registry import entry as weight_entry


@dataclass(frozen=True)
class ADMFlags:
    """The structural flags of guided-diffusion's ``create_model`` (defaults: the 256×256 unconditional model)."""

    image_size: int = 256
    num_channels: int = 256
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] | None = None
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 64
    learn_sigma: bool = True
    resblock_updown: bool = True
    use_scale_shift_norm: bool = True
    in_channels: int = 3
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_guided_diffusion(cls, flags: dict) -> ADMFlags:
        """Parse flags as guided-diffusion's README/``script_util`` spell them (comma-separated strings)."""

        def ints(value: str | list | tuple | None) -> tuple[int, ...] | None:
            if value in (None, ""):
                return None
            if isinstance(value, str):
                return tuple(int(v) for v in value.split(","))
            return tuple(int(v) for v in value)

        unsupported = {
            k: v
            for k, v in flags.items()
            if (k == "class_cond" and v) or (k == "use_new_attention_order" and v) or (k == "num_heads_upsample" and v != -1)
        }
        if unsupported:
            raise ValueError(f"ADM flags not supported by the converter: {unsupported}")
        if int(flags.get("num_head_channels", 64)) <= 0:
            raise ValueError("the converter needs num_head_channels > 0 (fixed head width, as all GD checkpoints use)")
        return cls(
            image_size=int(flags.get("image_size", 256)),
            num_channels=int(flags.get("num_channels", 256)),
            num_res_blocks=int(flags.get("num_res_blocks", 2)),
            channel_mult=ints(flags.get("channel_mult")),
            attention_resolutions=ints(flags.get("attention_resolutions", "32,16,8")) or (),
            num_head_channels=int(flags.get("num_head_channels", 64)),
            learn_sigma=bool(flags.get("learn_sigma", True)),
            resblock_updown=bool(flags.get("resblock_updown", True)),
            use_scale_shift_norm=bool(flags.get("use_scale_shift_norm", True)),
        )

    @property
    def multipliers(self) -> tuple[int, ...]:
        """guided-diffusion's default channel multipliers per image size."""
        if self.channel_mult:
            return self.channel_mult
        defaults = {512: (0.5, 1, 1, 2, 2, 4, 4), 256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}
        if self.image_size not in defaults:
            raise ValueError(f"no default channel_mult for image_size {self.image_size}; give channel_mult")
        return defaults[self.image_size]

    def attention_levels(self) -> list[bool]:
        """Which resolution levels carry attention (ADM: downsampling rate ``ds`` in image_size // resolution)."""
        rates = {self.image_size // r for r in self.attention_resolutions}
        return [2**level in rates for level in range(len(self.multipliers))]


def unet_config(flags: ADMFlags) -> dict:
    """``UNet2DModel`` keyword arguments that reproduce ADM's architecture.

    ADM's sinusoidal embedding is [cos, sin] with frequencies exp(−ln(10⁴)·i/half): ``flip_sin_to_cos=True``,
    ``freq_shift=0``. Resblock up/downsampling maps to the ``resnet`` sampler types and scale-shift norm to
    ``resnet_time_scale_shift='scale_shift'``; ``attn_norm_num_groups=32`` keeps the mid-block attention's
    GroupNorm, which diffusers otherwise drops under scale-shift.
    """
    if not flags.resblock_updown or not flags.use_scale_shift_norm:
        raise ValueError("the converter supports ADM with resblock_updown and use_scale_shift_norm (all GD checkpoints)")
    channels = [int(flags.num_channels * m) for m in flags.multipliers]
    attention = flags.attention_levels()
    return dict(
        sample_size=flags.image_size,
        in_channels=flags.in_channels,
        out_channels=flags.in_channels * (2 if flags.learn_sigma else 1),
        block_out_channels=tuple(channels),
        layers_per_block=flags.num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "ResnetDownsampleBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "ResnetUpsampleBlock2D" for a in reversed(attention)),
        downsample_type="resnet",
        upsample_type="resnet",
        attention_head_dim=flags.num_head_channels,
        attn_norm_num_groups=32,
        norm_num_groups=32,
        norm_eps=1e-5,
        resnet_time_scale_shift="scale_shift",
        flip_sin_to_cos=True,
        freq_shift=0,
        time_embedding_type="positional",
        add_attention=True,
    )


def _resblock_map(adm: str, hf: str) -> dict[str, str]:
    parts = {
        "in_layers.0": "norm1",
        "in_layers.2": "conv1",
        "emb_layers.1": "time_emb_proj",
        "out_layers.0": "norm2",
        "out_layers.3": "conv2",
        "skip_connection": "conv_shortcut",
    }
    return {f"{adm}.{a}.{p}": f"{hf}.{b}.{p}" for a, b in parts.items() for p in ("weight", "bias")}


def _module_pairs(flags: ADMFlags) -> list[tuple[str, str, str]]:
    """(kind, ADM prefix, diffusers prefix) for every ResBlock and attention block, in ADM's order."""
    levels = len(flags.multipliers)
    attention = flags.attention_levels()
    pairs: list[tuple[str, str, str]] = []
    block = 0
    for level in range(levels):
        for i in range(flags.num_res_blocks):
            block += 1
            pairs.append(("res", f"input_blocks.{block}.0", f"down_blocks.{level}.resnets.{i}"))
            if attention[level]:
                pairs.append(("attn", f"input_blocks.{block}.1", f"down_blocks.{level}.attentions.{i}"))
        if level != levels - 1:
            block += 1
            pairs.append(("res", f"input_blocks.{block}.0", f"down_blocks.{level}.downsamplers.0"))
    pairs += [
        ("res", "middle_block.0", "mid_block.resnets.0"),
        ("attn", "middle_block.1", "mid_block.attentions.0"),
        ("res", "middle_block.2", "mid_block.resnets.1"),
    ]
    block = 0
    for up, level in enumerate(reversed(range(levels))):
        for i in range(flags.num_res_blocks + 1):
            pairs.append(("res", f"output_blocks.{block}.0", f"up_blocks.{up}.resnets.{i}"))
            sub = 1
            if attention[level]:
                pairs.append(("attn", f"output_blocks.{block}.1", f"up_blocks.{up}.attentions.{i}"))
                sub = 2
            if level and i == flags.num_res_blocks:
                pairs.append(("res", f"output_blocks.{block}.{sub}", f"up_blocks.{up}.upsamplers.0"))
            block += 1
    return pairs


def convert_adm_state_dict(adm_state: dict[str, torch.Tensor], flags: ADMFlags) -> dict[str, torch.Tensor]:
    """Rename and reshape an ADM state dict into the ``UNet2DModel`` layout of :func:`unet_config`.

    Attention: ADM's legacy QKV attention packs, per head, [q; k; v] rows into one 1×1 conv of 3C outputs;
    diffusers wants separate q, k, v linears with heads contiguous, so rows are regrouped head by head.
    Every ADM key must be consumed; leftovers raise (a silent partial load would be a wrong model).
    """
    remaining = dict(adm_state)
    out: dict[str, torch.Tensor] = {}

    def take(src: str, dst: str, transform=lambda t: t) -> None:
        if src not in remaining:
            raise KeyError(f"ADM state dict lacks {src!r} (flags {flags} do not match the checkpoint?)")
        out[dst] = transform(remaining.pop(src))

    simple = {
        "time_embed.0": "time_embedding.linear_1",
        "time_embed.2": "time_embedding.linear_2",
        "input_blocks.0.0": "conv_in",
        "out.0": "conv_norm_out",
        "out.2": "conv_out",
    }
    for a, b in simple.items():
        for p in ("weight", "bias"):
            take(f"{a}.{p}", f"{b}.{p}")

    for kind, adm, hf in _module_pairs(flags):
        if kind == "res":
            for src, dst in _resblock_map(adm, hf).items():
                if src in remaining:
                    take(src, dst)
            continue
        for p in ("weight", "bias"):
            take(f"{adm}.norm.{p}", f"{hf}.group_norm.{p}")
            take(f"{adm}.proj_out.{p}", f"{hf}.to_out.0.{p}", lambda t: t.reshape(t.shape[0], -1) if t.ndim == 3 else t)
        qkv_w = remaining.pop(f"{adm}.qkv.weight")
        qkv_b = remaining.pop(f"{adm}.qkv.bias")
        channels = qkv_w.shape[1]
        heads = channels // flags.num_head_channels
        w = qkv_w.reshape(heads, 3, flags.num_head_channels, channels)
        b = qkv_b.reshape(heads, 3, flags.num_head_channels)
        for j, name in enumerate(("to_q", "to_k", "to_v")):
            out[f"{hf}.{name}.weight"] = w[:, j].reshape(channels, channels).contiguous()
            out[f"{hf}.{name}.bias"] = b[:, j].reshape(channels).contiguous()
    if remaining:
        raise KeyError(f"ADM keys left unmapped: {sorted(remaining)[:10]} ({len(remaining)} in all)")
    return out


def build_unet(flags: ADMFlags) -> UNet2DModel:
    """A randomly initialised ``UNet2DModel`` with ADM's architecture."""
    return UNet2DModel(**unet_config(flags))


def unet_from_adm_state_dict(adm_state: dict[str, torch.Tensor], flags: ADMFlags) -> UNet2DModel:
    """Build the diffusers model and load a converted ADM state dict strictly, in float32."""
    model = build_unet(flags)
    converted = {k: v.float() for k, v in convert_adm_state_dict(adm_state, flags).items()}
    model.load_state_dict(converted, strict=True)
    return model.eval()


def load_guided_diffusion(checkpoint: str | Path | None = None, flags: dict | None = None) -> UNet2DModel:
    """Load an ADM ``.pt`` checkpoint from a local path (default ``$ADIR_WEIGHTS/256x256_diffusion_uncond.pt``).

    The file is read by the framework's tensors-only reader: an untrusted pickle cannot run code.
    """
    weight = weight_entry("gd-adm256-uncond")
    if checkpoint:
        weight = dataclasses.replace(weight, locate=lambda: Path(checkpoint).expanduser())
    if not weight.present():
        raise MissingWeightsError(
            weight, "Or pass model.denoiser.unet.checkpoint=/path/to/the/file.pt; this framework never downloads it."
        )
    state = load_tensors(weight.path)
    return unet_from_adm_state_dict(state, ADMFlags.from_guided_diffusion(flags or {}))


def random_adm(flags: dict, seed: int = 0) -> UNet2DModel:
    """An ADM-architecture ``UNet2DModel`` with seeded random weights (tests, smoke runs, timing)."""
    torch.manual_seed(seed)
    return build_unet(ADMFlags.from_guided_diffusion(flags)).eval()
