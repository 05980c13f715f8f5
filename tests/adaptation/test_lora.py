"""LoRA injection through peft: target selection, its errors, and merging adapters into the base weights."""

from __future__ import annotations

import pytest
import torch
import yaml
from peft.tuners.lora import LoraLayer

from adir_exp.adaptation.lora import (
    LoRATargetError,
    add_lora,
    lora_parameters,
    merge_lora,
)
from adir_exp.cli.config import CONF_DIR
from adir_exp.models import ADMFlags, UNetDenoiser
from adir_exp.models.guided_diffusion import build_unet

X = torch.linspace(-1, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
T = torch.tensor([10, 700])


def lora_layer_names(network) -> set[str]:
    return {name for name, module in network.named_modules() if isinstance(module, LoraLayer)}


def test_conv2d_preset_adapts_every_conv2d_and_trains_only_adapters(denoiser: UNetDenoiser) -> None:
    convs = {n for n, m in denoiser.unet.named_modules() if isinstance(m, torch.nn.Conv2d)}
    names = add_lora(denoiser.unet)
    assert set(names) == convs == lora_layer_names(denoiser.unet)
    trainable = {n for n, p in denoiser.unet.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert len(lora_parameters(denoiser.unet)) == 2 * len(names)


def test_adm_conv_adds_every_attention_projection_of_gd256() -> None:
    """The paper adapts "all the convolution layers" (Sec. 4); ADM's attention qkv/proj_out are 1×1 Conv1d, which
    the converted UNet holds as q, k, v, out Linear layers. GD-256 (conf/model/gd256_uncond.yaml's flags, built on
    the meta device: no weights) has 106 Conv2d and 16 attention blocks: rank-16 LoRA on 106 layers (10.3 M
    parameters) with conv2d, on 170 (12.1 M) with adm_conv, the GD tables' targets."""
    model = yaml.safe_load((CONF_DIR / "model" / "gd256_uncond.yaml").read_text())
    flags = ADMFlags.from_guided_diffusion(model["denoiser"]["unet"]["flags"])
    adapted = {}
    for targets in ("conv2d", "adm_conv"):
        with torch.device("meta"):
            unet = build_unet(flags)
            names = add_lora(unet, rank=16, alpha=8, targets=targets)
        adapted[targets] = (len(names), sum(p.numel() for p in lora_parameters(unet)))
    attention_blocks = [n for n, m in unet.named_modules() if type(m).__name__ == "Attention"]
    assert len(attention_blocks) == 16
    assert adapted == {"conv2d": (106, 10_306_064), "adm_conv": (106 + 4 * 16, 12_075_536)}


def test_regex_and_list_targets(denoiser: UNetDenoiser) -> None:
    names = add_lora(denoiser.unet, targets=r"mid_block\.resnets\.\d+\.conv[12]")
    assert names == sorted(f"mid_block.resnets.{i}.conv{j}" for i in (0, 1) for j in (1, 2))
    assert lora_layer_names(denoiser.unet) == set(names)


@pytest.mark.parametrize("targets", [r"no_such_layer\.\d+", ["conv_in_typo"], r"time_embedding"])
def test_targets_matching_no_layer_raise(denoiser: UNetDenoiser, targets) -> None:
    with pytest.raises(LoRATargetError, match="match no Conv2d/Linear layer"):
        add_lora(denoiser.unet, targets=targets)
    assert not lora_layer_names(denoiser.unet)


# float32 noise floor of this random network: its outputs already move by ~1e-5 between 1 and 2 CPU threads.
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-10), (torch.float32, 5e-5)])
def test_merge_folds_adapters_into_plain_layers_with_same_outputs(denoiser: UNetDenoiser, dtype, atol) -> None:
    network, x = denoiser.unet.to(dtype), X.to(dtype)
    with torch.no_grad():
        base = network(x, T).sample
    names = add_lora(network)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "lora_B" in name:  # as training does: A keeps peft's init, B moves away from 0
                parameter.normal_(0.0, 0.01)
        adapted = network(x, T).sample
        assert (adapted - base).abs().max() > 1e-2  # the adapters matter
        assert sorted(merge_lora(network)) == names
        merged = network(x, T).sample
    assert not lora_layer_names(network)
    assert not any("lora_" in n for n, _ in network.named_parameters())
    assert type(network.conv_in) is torch.nn.Conv2d
    torch.testing.assert_close(merged, adapted, rtol=0, atol=atol)
