"""LoRA injection through peft: target selection, its errors, and merging adapters into the base weights."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lora import LoraLayer

from adir_exp.adaptation.lora import LoRATargetError, add_lora, lora_parameters, merge_lora
from adir_exp.models import UNetDenoiser

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
