"""Fused LoRA: the same function, gradients, state dict and merge as peft's layers, and refusal where not exact."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners import lora
from safetensors.torch import load_file
from torch import nn

from adir_exp.adaptation import LoRAFusionError, load_adapter, save_adapter
from adir_exp.adaptation.artifacts import AdapterMetadata
from adir_exp.adaptation.fused_lora import FusedLoraConv2d, FusedLoraLinear
from adir_exp.adaptation.lora import ADAPTER_NAME, add_lora, merge_lora
from adir_exp.models import UNetDenoiser
from adir_exp.models.execution import prepare_network

T = torch.tensor([10, 700])

# The layer shapes of a diffusers ADM UNet: 3×3 convs (stride 1, and stride 2 for a downsample), 1×1 skip convs,
# with and without bias; the attention projections are Linear layers on (batch, tokens, channels).
LAYERS = {
    "conv3x3": lambda: nn.Conv2d(8, 12, 3, padding=1),
    "conv3x3_stride2": lambda: nn.Conv2d(8, 8, 3, stride=2, padding=1),
    "conv1x1": lambda: nn.Conv2d(12, 8, 1),
    "conv3x3_no_bias": lambda: nn.Conv2d(8, 12, 3, padding=1, bias=False),
    "linear": lambda: nn.Linear(8, 12),
}


def adapted_pair(make_layer, dtype: torch.dtype, rank: int = 4) -> tuple[nn.Module, nn.Module]:
    """The same layer and adapter weights, once with peft's LoRA layer and once fused; B random (trained-like)."""
    torch.manual_seed(0)
    peft_net = nn.Sequential(make_layer()).to(dtype)
    fused_net = copy.deepcopy(peft_net)
    add_lora(peft_net, rank=rank, alpha=8.0, targets=["0"], fused=False)
    add_lora(fused_net, rank=rank, alpha=8.0, targets=["0"], fused=True)
    with torch.no_grad():
        for name, parameter in peft_net.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.1)
    fused_net.load_state_dict(peft_net.state_dict())
    return peft_net, fused_net


def layer_input(layer: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (3, layer.in_channels, 10, 10) if isinstance(layer, nn.Conv2d) else (3, 5, layer.in_features)
    return torch.randn(shape, generator=generator).to(dtype)


def output_and_gradients(network: nn.Module, x: torch.Tensor, *args: torch.Tensor) -> dict[str, torch.Tensor]:
    """Output, ∂L/∂x and ∂L/∂(trainable weights) of a fixed, non-symmetric loss."""
    x = x.clone().requires_grad_(True)
    out = network(x, *args)
    out = getattr(out, "sample", out)  # a diffusers UNet returns an output object
    weights = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view_as(out)
    (weights * out).sum().backward()
    grads = {name: p.grad for name, p in network.named_parameters() if p.requires_grad}
    return {"out": out.detach(), "x": x.grad, **grads}


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_fused_layer_equals_peft_layer_in_output_and_gradients(kind, dtype, tolerance) -> None:
    peft_net, fused_net = adapted_pair(LAYERS[kind], dtype)
    assert type(fused_net[0]) in (FusedLoraConv2d, FusedLoraLinear)
    assert type(peft_net[0]) in (lora.Conv2d, lora.Linear)
    x = layer_input(peft_net[0].get_base_layer(), dtype)
    expected, got = output_and_gradients(peft_net, x), output_and_gradients(fused_net, x)
    assert set(got) == set(expected) == {"out", "x", f"0.lora_A.{ADAPTER_NAME}.weight", f"0.lora_B.{ADAPTER_NAME}.weight"}
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=tolerance, atol=tolerance, msg=key)


@pytest.mark.parametrize("kind", ["conv3x3", "linear"])
def test_unfrozen_base_weight_and_bias_get_peft_gradients_too(kind) -> None:
    peft_net, fused_net = adapted_pair(LAYERS[kind], torch.float64)
    for network in (peft_net, fused_net):
        network[0].get_base_layer().requires_grad_(True)
    x = layer_input(peft_net[0].get_base_layer(), torch.float64)
    expected, got = output_and_gradients(peft_net, x), output_and_gradients(fused_net, x)
    assert "0.base_layer.weight" in got and "0.base_layer.bias" in got
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-12, atol=1e-12, msg=key)


def test_fused_unet_equals_peft_unet_in_output_gradients_and_state_dict(denoiser: UNetDenoiser) -> None:
    """Every Conv2d and attention Linear of an ADM, float64: same output, input and adapter gradients, same keys."""
    peft_unet = denoiser.unet.double()
    fused_unet = copy.deepcopy(peft_unet)
    names = add_lora(peft_unet, targets="adm_conv", fused=False)
    assert add_lora(fused_unet, targets="adm_conv") == names  # the default fuses
    fused_types = {type(m) for n, m in fused_unet.named_modules() if n in names}
    assert fused_types == {FusedLoraConv2d, FusedLoraLinear}
    with torch.no_grad():
        for name, parameter in peft_unet.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.01)
    peft_state = get_peft_model_state_dict(peft_unet, adapter_name=ADAPTER_NAME)
    set_peft_model_state_dict(fused_unet, peft_state, adapter_name=ADAPTER_NAME)
    fused_state = get_peft_model_state_dict(fused_unet, adapter_name=ADAPTER_NAME)
    assert list(fused_state) == list(peft_state)
    assert all(torch.equal(fused_state[k], peft_state[k]) for k in peft_state)

    x = torch.linspace(-1, 1, 2 * 3 * 32 * 32, dtype=torch.float64).view(2, 3, 32, 32)
    expected, got = output_and_gradients(peft_unet, x, T), output_and_gradients(fused_unet, x, T)
    assert len(got) == len(expected) == 2 + 2 * len(names)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-10, atol=1e-12, msg=key)


def randomize_adapters(network: nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.01)


def test_fused_adapters_merge_into_the_same_weights(denoiser: UNetDenoiser) -> None:
    unet = denoiser.unet.double()
    x = torch.linspace(-1, 1, 2 * 3 * 32 * 32, dtype=torch.float64).view(2, 3, 32, 32)
    names = add_lora(unet, fused=True)
    randomize_adapters(unet)
    with torch.no_grad():
        adapted = unet(x, T).sample
        assert sorted(merge_lora(unet)) == names
        merged = unet(x, T).sample
    assert type(unet.conv_in) is nn.Conv2d
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-10)


def test_adapter_saved_from_fused_layers_loads_into_peft_layers_and_back(tmp_path, denoiser: UNetDenoiser) -> None:
    fused_unet, base = denoiser.unet, copy.deepcopy(denoiser.unet)
    add_lora(fused_unet, fused=True)
    randomize_adapters(fused_unet)
    lora_config = {"rank": 16, "alpha": 8.0, "dropout": 0.0, "targets": "conv2d"}
    path = save_adapter(fused_unet, tmp_path / "adapter", AdapterMetadata("tiny", "sr4", ("a",), 0, lora_config))

    peft_unet = copy.deepcopy(base)
    add_lora(peft_unet, fused=False)
    result = set_peft_model_state_dict(peft_unet, load_file(str(path / "adapter_model.safetensors")),
                                       adapter_name=ADAPTER_NAME)
    assert not result.unexpected_keys and not [k for k in result.missing_keys if "lora_" in k]
    reloaded = copy.deepcopy(base)
    load_adapter(reloaded, path)  # the default: fused layers again
    assert type(reloaded.conv_in) is FusedLoraConv2d

    x = torch.linspace(-1, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
    with torch.no_grad():
        expected = fused_unet(x, T).sample
        torch.testing.assert_close(peft_unet(x, T).sample, expected, rtol=0, atol=5e-5)
        torch.testing.assert_close(reloaded(x, T).sample, expected, rtol=0, atol=0)


def test_dropout_cannot_be_fused_and_the_default_then_keeps_peft_layers() -> None:
    with pytest.raises(LoRAFusionError, match="dropout 0.1 acts on the adapter's input.*fused=False"):
        add_lora(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), targets=["0"], dropout=0.1, fused=True)
    network = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
    add_lora(network, rank=4, targets=["0"], dropout=0.1)
    assert type(network[0]) is lora.Conv2d


@pytest.mark.filterwarnings("ignore:LoRA adapter added to ConvNd layer with groups > 1")
@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (nn.Conv2d(4, 4, 3, padding=1, groups=2), "groups=2"),
        (nn.Conv2d(4, 4, 3, padding=2, dilation=2), "dilation=\\(2, 2\\)"),
        (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
        (nn.Conv2d(4, 4, 3, padding="same"), "padding='same'"),
    ],
)
def test_layers_peft_adapts_differently_are_refused_or_left_to_peft(layer, message) -> None:
    """peft's adapter convolution ignores groups, dilation and the padding mode: one folded weight would differ."""
    with pytest.raises(LoRAFusionError, match=message):
        add_lora(nn.Sequential(copy.deepcopy(layer)), rank=4, targets=["0"], fused=True)
    network = nn.Sequential(layer)
    add_lora(network, rank=4, targets=["0"])
    assert type(network[0]) is lora.Conv2d


def test_disabled_or_merged_adapters_go_through_peft_forward() -> None:
    peft_net, fused_net = adapted_pair(LAYERS["conv3x3"], torch.float64)
    x = layer_input(peft_net[0].get_base_layer(), torch.float64)
    layer = fused_net[0]
    with torch.no_grad():
        adapted, base = layer(x), layer.get_base_layer()(x)
        layer.enable_adapters(False)
        torch.testing.assert_close(layer(x), base, rtol=0, atol=0)
        layer.enable_adapters(True)
        layer.merge(adapter_names=[ADAPTER_NAME])
        torch.testing.assert_close(layer(x), adapted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["conv3x3", "linear"])
def test_under_bf16_autocast_fused_matches_peft_and_gradients_stay_fp32(kind) -> None:
    peft_net, fused_net = adapted_pair(LAYERS[kind], torch.float32)
    x = layer_input(peft_net[0].get_base_layer(), torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = output_and_gradients(peft_net, x), output_and_gradients(fused_net, x)
    assert got["out"].dtype == expected["out"].dtype == torch.bfloat16
    for key in expected:
        assert got[key].dtype == expected[key].dtype, key
        scale = expected[key].abs().max()
        torch.testing.assert_close(got[key].float(), expected[key].float(), rtol=0, atol=0.03 * scale, msg=key)


@pytest.mark.integration
def test_compiled_fused_network_keeps_peft_keys_outputs_and_gradients() -> None:
    """``compile=True`` (nn.Module.compile, in place) on fused LoRA layers: ≈ 20 s of compilation on a CPU."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU(), nn.Conv2d(8, 4, 1))
    add_lora(network, rank=4, targets="conv2d")
    randomize_adapters(network)
    eager = copy.deepcopy(network)
    keys, peft_keys = list(network.state_dict()), list(get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME))
    prepare_network(network, compile=True)
    x = torch.randn(2, 4, 8, 8)
    expected, got = output_and_gradients(eager, x), output_and_gradients(network, x)
    assert list(network.state_dict()) == keys
    assert list(get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME)) == peft_keys
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)


def test_fp32_adapters_on_a_half_precision_base() -> None:
    """fp32 adapters on a bf16 base (mixed-precision training's layout): the fused layer folds in fp32 and runs the
    base's dtype, where peft runs the adapter path in fp32 and casts the sum back."""
    peft_net, fused_net = adapted_pair(LAYERS["conv3x3"], torch.bfloat16)
    for network in (peft_net, fused_net):
        for module in (network[0].lora_A, network[0].lora_B):
            module.float()
    x = layer_input(peft_net[0].get_base_layer(), torch.bfloat16)
    expected, got = output_and_gradients(peft_net, x), output_and_gradients(fused_net, x)
    assert got["out"].dtype == torch.bfloat16
    for key in expected:
        assert got[key].dtype == expected[key].dtype, key
        scale = expected[key].abs().max()
        torch.testing.assert_close(got[key].float(), expected[key].float(), rtol=0, atol=0.03 * scale, msg=key)
