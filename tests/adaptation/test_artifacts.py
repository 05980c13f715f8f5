"""Adapters as safetensors artifacts: save → load reproduces the adapted network exactly, with its metadata."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from adir_exp.adaptation import (
    AdapterFileError,
    AdapterMetadata,
    GDObjective,
    LoRAAdaptation,
    load_adapter,
    merge_lora,
    save_adapter,
)
from adir_exp.adaptation.lora import add_lora
from adir_exp.diffusion import NoiseSchedule
from adir_exp.models import UNetDenoiser, random_adm
from tests.adaptation.conftest import TINY_ADM

X = torch.linspace(-1, 1, 2 * 3 * 32 * 32).view(2, 3, 32, 32)
T = torch.tensor([5, 900])


def fresh_network():
    return random_adm(TINY_ADM, seed=0)


def adapted_network(targets="conv2d"):
    """A network whose adapters look trained (B ≠ 0)."""
    network = fresh_network()
    names = add_lora(network, rank=4, alpha=8.0, targets=targets)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.01)
    return network, names


def metadata(names) -> AdapterMetadata:
    lora = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": names}
    return AdapterMetadata("adm_tiny", "sr4", ("img/a.png", "img/b.png"), 3, lora)


def outputs(network) -> torch.Tensor:
    with torch.no_grad():
        return network(X, T).sample


def test_save_then_load_reproduces_outputs_exactly(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter.safetensors", metadata(names))
    reloaded = fresh_network()
    assert not torch.equal(outputs(reloaded), outputs(network))
    loaded = load_adapter(reloaded, path, base_model="adm_tiny")
    assert loaded == metadata(names)
    assert torch.equal(outputs(reloaded), outputs(network))


def test_file_is_peft_safetensors_with_string_metadata(tmp_path) -> None:
    network, names = adapted_network(targets=r"mid_block\.resnets\.0\.conv1")
    path = save_adapter(network, tmp_path / "adapter.safetensors", metadata(names))
    with safe_open(str(path), framework="pt") as handle:
        keys, meta = set(handle.keys()), handle.metadata()
    assert keys == {"mid_block.resnets.0.conv1.lora_A.weight", "mid_block.resnets.0.conv1.lora_B.weight"}
    assert meta["base_model"] == "adm_tiny" and meta["task"] == "sr4" and meta["seed"] == "3"
    assert meta["k"] == "2" and json.loads(meta["image_ids"]) == ["img/a.png", "img/b.png"]
    assert json.loads(meta["lora_config"])["targets"] == ["mid_block.resnets.0.conv1"]


def test_loaded_adapter_can_be_merged(tmp_path) -> None:
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter.safetensors", metadata(names))
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
    path = save_adapter(network, tmp_path / "adapter.safetensors", metadata(names))
    with pytest.raises(AdapterFileError, match="fitted on base model 'adm_tiny', not 'gd256_uncond'"):
        load_adapter(fresh_network(), path, base_model="gd256_uncond")


def test_foreign_or_mismatched_files_are_refused(tmp_path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"conv_in.lora_A.weight": torch.zeros(4, 3, 3, 3)}, str(plain))
    with pytest.raises(AdapterFileError, match="not an ADIR adapter file"):
        load_adapter(fresh_network(), plain)
    with pytest.raises(FileNotFoundError, match="adapter file not found"):
        load_adapter(fresh_network(), tmp_path / "missing.safetensors")
    network, names = adapted_network()
    path = save_adapter(network, tmp_path / "adapter.safetensors", metadata(names))
    wider = dict(TINY_ADM, num_channels=64)
    with pytest.raises(AdapterFileError, match="does not fit.*size mismatch"):
        load_adapter(random_adm(wider, seed=0), path)


def test_a_network_without_adapters_cannot_be_saved(tmp_path) -> None:
    with pytest.raises(AdapterFileError, match="no LoRA adapter"):
        save_adapter(fresh_network(), tmp_path / "adapter.safetensors", metadata([]))
