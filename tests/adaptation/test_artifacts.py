"""Adapters as artifacts: save → load reproduces the adapted network exactly, with its metadata; the directory is
peft's ``save_pretrained`` layout, so plain peft (and diffusers, for SD UNets) load it too; adir-lora/1 files load."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import (
    LoraConfig,
    PeftModel,
    get_peft_model,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from adir_exp.adaptation import (
    AdapterFileError,
    AdapterMetadata,
    load_adapter,
    merge_lora,
    save_adapter,
)
from adir_exp.adaptation.artifacts import read_metadata
from adir_exp.adaptation.lora import ADAPTER_NAME, add_lora
from adir_exp.models import random_adm
from tests.adaptation.conftest import TINY_ADM
from tests.priors.sd_tiny import TEXT_DIM, tiny_upscaler

X = torch.linspace(-1, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
T = torch.tensor([5, 900])


def fresh_network():
    return random_adm(TINY_ADM, seed=0)


def look_trained(network) -> None:
    """Adapters as after a fit (B ≠ 0), so that a wrong load shows in the outputs."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)


def adapted_network(targets="conv2d"):
    network = fresh_network()
    names = add_lora(network, rank=4, alpha=8.0, targets=targets)
    look_trained(network)
    return network, names


def metadata(names, base_model="adm_tiny") -> AdapterMetadata:
    lora = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": names}
    return AdapterMetadata(base_model, "sr4", ("img/a.png", "img/b.png"), 3, lora)


def contents(path) -> tuple[set[str], dict[str, str]]:
    """A safetensors file's keys and header."""
    with safe_open(str(path), framework="pt") as handle:
        return set(handle.keys()), handle.metadata()


def outputs(network) -> torch.Tensor:
    with torch.no_grad():
        return network(X, T).sample


def test_save_then_load_reproduces_outputs_exactly(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    reloaded = fresh_network()
    assert not torch.equal(outputs(reloaded), outputs(network))
    loaded = load_adapter(reloaded, path, base_model="adm_tiny")
    assert loaded == metadata(names)
    assert torch.equal(outputs(reloaded), outputs(network))


def test_directory_is_what_peft_save_pretrained_writes_plus_our_metadata(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                      "adir_adapter.json"]  # fmt: skip
    reference = get_peft_model(fresh_network(), LoraConfig(r=4, lora_alpha=8.0, target_modules=names))
    reference.save_pretrained(tmp_path / "peft")
    ours, theirs = (json.loads((d / "adapter_config.json").read_text()) for d in (path, tmp_path / "peft"))
    assert ours == theirs | {"target_modules": sorted(theirs["target_modules"])}
    keys, header = contents(path / "adapter_model.safetensors")
    assert keys == contents(tmp_path / "peft" / "adapter_model.safetensors")[0]
    assert "base_model.model.conv_in.lora_A.weight" in keys
    assert header["format"] == "pt" and json.loads(header["adir_adapter"]) == metadata(names).to_dict()
    described = json.loads((path / "adir_adapter.json").read_text())
    assert described == metadata(names).to_dict() and described["format"] == "adir-lora/2" and described["k"] == 2
    assert read_metadata(path) == read_metadata(path / "adapter_model.safetensors") == metadata(names)


def test_plain_peft_loads_the_adapter_with_the_same_outputs(tmp_path) -> None:
    """The peft round trip: PeftModel.from_pretrained wraps the diffusers UNet2DModel of a pixel prior (any
    nn.Module) and reads the directory; set_peft_model_state_dict reads the file into an injected network."""
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    wrapped = PeftModel.from_pretrained(fresh_network(), path)
    # ours runs the fused layers (one convolution with W + s·BA), peft two convolutions: equal up to float32
    # rounding of another summation order (1.5e-5 seen single-threaded)
    torch.testing.assert_close(outputs(wrapped), outputs(network), rtol=1e-5, atol=5e-5)
    config = LoraConfig.from_pretrained(path)
    injected = inject_adapter_in_model(config, fresh_network())
    result = set_peft_model_state_dict(injected, load_file(path / "adapter_model.safetensors"))
    assert not result.unexpected_keys
    torch.testing.assert_close(outputs(injected), outputs(network), rtol=1e-5, atol=5e-5)


def test_diffusers_loads_an_sd_unet_adapter_with_the_same_outputs(tmp_path) -> None:
    """SD: ``pipeline.load_lora_weights(directory)`` and ``unet.load_lora_adapter(directory, prefix="unet")``
    read the directory's pytorch_lora_weights.safetensors; the UNet then computes what our loader's does."""
    pipeline = tiny_upscaler()
    base = copy.deepcopy(pipeline.unet)
    adapted = copy.deepcopy(base)
    names = add_lora(adapted, rank=4, alpha=8.0, targets="conv2d")
    look_trained(adapted)
    path = save_adapter(adapted, tmp_path / "adapter", metadata(names, base_model="sd_x4"))
    ours = copy.deepcopy(base)
    load_adapter(ours, path, base_model="sd_x4")
    pipeline.load_lora_weights(path)
    unet = copy.deepcopy(base)
    unet.load_lora_adapter(path, prefix="unet", use_safetensors=True)
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.randn(1, 7, 16, 16, generator=generator), torch.tensor([500]))
    context = {"encoder_hidden_states": torch.randn(1, 4, TEXT_DIM, generator=generator),
               "class_labels": torch.tensor([20])}  # fmt: skip
    with torch.no_grad():
        expected = adapted(*inputs, **context).sample
        assert not torch.equal(base(*inputs, **context).sample, expected)
        assert torch.equal(ours(*inputs, **context).sample, expected)
        for loaded in (pipeline.unet, unet):  # diffusers' unfused layers: equal up to rounding
            torch.testing.assert_close(loaded(*inputs, **context).sample, expected, rtol=1e-5, atol=1e-5)


def test_adir_lora_1_files_still_load(tmp_path) -> None:
    """A file in the first format: one .safetensors, unprefixed peft keys, the metadata as header strings."""
    network, names = adapted_network()
    legacy = tmp_path / "adapter.safetensors"
    state = get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME)
    header = {"format": "adir-lora/1", "base_model": "adm_tiny", "task": "sr4", "k": "2",
              "image_ids": json.dumps(["img/a.png", "img/b.png"]), "seed": "3",
              "lora_config": json.dumps(metadata(names).lora)}  # fmt: skip
    save_file({k: v.contiguous() for k, v in state.items()}, str(legacy), metadata=header)
    reloaded = fresh_network()
    assert load_adapter(reloaded, legacy, base_model="adm_tiny") == metadata(names)
    assert torch.equal(outputs(reloaded), outputs(network))
    with pytest.raises(AdapterFileError, match="fitted on base model 'adm_tiny', not 'gd256_uncond'"):
        load_adapter(fresh_network(), legacy, base_model="gd256_uncond")


def test_loaded_adapter_can_be_merged(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    reloaded = fresh_network()
    load_adapter(reloaded, path)
    reloaded.double()  # float64: merging is then exact to rounding (float32 tolerance: tests/adaptation/test_lora.py)
    with torch.no_grad():
        adapted = reloaded(X.double(), T).sample
        merge_lora(reloaded)
        merged = reloaded(X.double(), T).sample
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-10)


def test_wrong_base_model_is_refused(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    with pytest.raises(AdapterFileError, match="fitted on base model 'adm_tiny', not 'gd256_uncond'"):
        load_adapter(fresh_network(), path, base_model="gd256_uncond")


def test_foreign_or_mismatched_adapters_are_refused(tmp_path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"conv_in.lora_A.weight": torch.zeros(4, 3, 3, 3)}, str(plain))
    with pytest.raises(AdapterFileError, match="not an ADIR adapter file"):
        load_adapter(fresh_network(), plain)
    with pytest.raises(FileNotFoundError, match="adapter not found"):
        load_adapter(fresh_network(), tmp_path / "missing")
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter", metadata(names))
    peft_only = tmp_path / "peft_only"
    PeftModel.from_pretrained(fresh_network(), path).save_pretrained(peft_only)
    with pytest.raises(AdapterFileError, match="not an ADIR adapter directory.*adir_adapter.json missing"):
        load_adapter(fresh_network(), peft_only)
    (path / "adapter_model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    with pytest.raises(AdapterFileError, match="has no adapter_model.safetensors"):
        load_adapter(fresh_network(), path)
    wider = dict(TINY_ADM, num_channels=64)
    with pytest.raises(AdapterFileError, match="does not fit.*size mismatch"):
        load_adapter(random_adm(wider, seed=0), tmp_path / "elsewhere.safetensors")


def test_a_network_without_adapters_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(AdapterFileError, match="no LoRA adapter"):
        save_adapter(fresh_network(), tmp_path / "adapter", metadata([]))
