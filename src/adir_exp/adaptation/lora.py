"""LoRA adapters on a diffusion network through peft: the only weights ADIR's adaptation trains."""

from __future__ import annotations

import re
from collections.abc import Sequence

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from adir_exp.adaptation.fused_lora import (
    FUSED_LAYERS,
    LoRAFusionError,
    unfusable_reason,
)

ADAPTER_NAME = "adir"

# Named target sets. "conv2d": every Conv2d (the default). "adm_conv": also the attention projections
# that are 1×1 Conv1d layers in OpenAI's ADM code (qkv, proj_out) and Linear layers after conversion to
# diffusers, i.e. every layer the paper's "all conv layers" touched in the original model.
TARGET_PRESETS = {"conv2d": (nn.Conv2d,), "adm_conv": (nn.Conv2d,)}
ADM_ATTENTION_PROJECTIONS = re.compile(r".*attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)$")


class LoRATargetError(ValueError):
    """The LoRA target specification matches no layer of the network."""


def resolve_targets(network: nn.Module, targets: str | Sequence[str]) -> list[str]:
    """Module names to adapt: a preset name, a regex over module names, or an explicit list of names."""
    names: list[str]
    if isinstance(targets, str) and targets in TARGET_PRESETS:
        kinds = TARGET_PRESETS[targets]
        names = [n for n, m in network.named_modules() if isinstance(m, kinds)]
        if targets == "adm_conv":
            names += [n for n, m in network.named_modules() if isinstance(m, nn.Linear) and ADM_ATTENTION_PROJECTIONS.match(n)]
    elif isinstance(targets, str):
        pattern = re.compile(targets)
        names = [n for n, m in network.named_modules() if n and pattern.fullmatch(n) and isinstance(m, (nn.Conv2d, nn.Linear))]
    else:
        available = dict(network.named_modules())
        names = [n for n in targets if n in available]
    if not names:
        raise LoRATargetError(
            f"LoRA targets {targets!r} match no Conv2d/Linear layer of {type(network).__name__}; "
            f"use a preset ({', '.join(TARGET_PRESETS)}), a regex over module names, or a list of names"
        )
    return sorted(set(names))


def add_lora(
    network: nn.Module,
    rank: int = 16,
    alpha: float = 8.0,
    targets: str | Sequence[str] = "conv2d",
    dropout: float = 0.0,
    fused: bool | None = None,
) -> list[str]:
    """Inject LoRA (rank ``rank``, scale ``alpha/rank``) into ``network`` in place; freeze everything else.

    Returns the adapted module names. The adapters start as an exact no-op (peft initialises B = 0).

    ``fused``: each adapted layer runs one convolution with W + (α/r)·B·A instead of peft's three
    (:mod:`~adir_exp.adaptation.fused_lora`): the same function, gradients and peft state dict, less time.
    ``None`` (default) fuses whenever that is exact: no dropout and every target a plain Conv2d/Linear (groups 1,
    dilation 1, zero padding), and otherwise keeps peft's layers. ``True`` raises :class:`LoRAFusionError` where
    fusion is not exact (dropout > 0 in particular); ``False`` always keeps peft's layers.
    """
    names = resolve_targets(network, targets)
    reasons = {name: unfusable_reason(network.get_submodule(name), dropout) for name in names}
    unfusable = {name: reason for name, reason in reasons.items() if reason}
    if fused and unfusable:
        first = next(iter(unfusable.items()))
        raise LoRAFusionError(
            f"fused LoRA is not exact for {len(unfusable)} target(s), e.g. {first[0]}: {first[1]}; use fused=False"
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, init_lora_weights=True)
    if fused is not False and not unfusable:
        config._register_custom_module(FUSED_LAYERS)  # peft's (experimental) hook for custom LoRA layer classes
    inject_adapter_in_model(config, network, adapter_name=ADAPTER_NAME)
    for name, parameter in network.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return names


def lora_parameters(network: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in network.named_parameters() if "lora_" in n]


def merge_lora(network: nn.Module) -> list[str]:
    """Fold every LoRA adapter into its base layer's weights and put the plain layer back (peft's
    ``merge_and_unload`` for a model that is not a ``PeftModel``): sampling then costs what the base model costs.

    Returns the merged module names. The network can no longer be trained or saved as an adapter afterwards.
    """
    merged = [name for name, module in network.named_modules() if isinstance(module, BaseTunerLayer)]
    for name in merged:
        parent_name, _, child_name = name.rpartition(".")
        layer = network.get_submodule(name)
        layer.merge(adapter_names=[ADAPTER_NAME])
        setattr(network.get_submodule(parent_name), child_name, layer.get_base_layer())
    if hasattr(network, "peft_config"):
        del network.peft_config
    return merged
