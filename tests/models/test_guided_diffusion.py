"""The ADM → diffusers converter against facts made with the official guided-diffusion code."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from adir_exp.models import ADMFlags, load_guided_diffusion, unet_from_adm_state_dict
from adir_exp.models.guided_diffusion import build_unet, convert_adm_state_dict
from adir_exp.weights import CheckpointError, MissingWeightsError


def test_every_gd256_key_maps_with_its_shape(adm_fixtures) -> None:
    table = json.loads((adm_fixtures / "adm256_uncond_keys.json").read_text())
    flags = ADMFlags.from_guided_diffusion(table["config"])
    adm_state = {k: torch.empty(shape, device="meta") for k, shape in table["keys"].items()}
    converted = convert_adm_state_dict(adm_state, flags)
    with torch.device("meta"):
        model = build_unet(flags)
    target = model.state_dict()
    assert set(converted) == set(target), "keys unmapped on one side"
    mismatched = {k: (tuple(converted[k].shape), tuple(target[k].shape)) for k in target if converted[k].shape != target[k].shape}
    assert not mismatched
    assert sum(p.numel() for p in model.parameters()) == table["num_params"]


def test_tiny_adm_reproduces_reference_outputs(adm_fixtures) -> None:
    config = json.loads((adm_fixtures / "adm_tiny_config.json").read_text())
    model = unet_from_adm_state_dict(
        load_file(adm_fixtures / "adm_tiny_state_dict.safetensors"), ADMFlags.from_guided_diffusion(config["config"])
    )
    io = load_file(adm_fixtures / "adm_tiny_io.safetensors")
    with torch.no_grad():
        out = model(io["x"], io["t"]).sample
    assert out.shape == io["out"].shape
    assert (out - io["out"]).abs().max() < 1e-4


def test_load_from_pt_file_with_weights_only(adm_fixtures, tmp_path) -> None:
    config = json.loads((adm_fixtures / "adm_tiny_config.json").read_text())
    path = tmp_path / "tiny.pt"
    torch.save(load_file(adm_fixtures / "adm_tiny_state_dict.safetensors"), path)
    model = load_guided_diffusion(path, config["config"])
    io = load_file(adm_fixtures / "adm_tiny_io.safetensors")
    with torch.no_grad():
        assert (model(io["x"], io["t"]).sample - io["out"]).abs().max() < 1e-4


def test_untrusted_pickle_is_refused(adm_fixtures, tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"payload": ADMFlags()}, path)  # an arbitrary object: not loadable with weights_only
    with pytest.raises(CheckpointError, match=f"{path} holds Python objects besides tensors .*ADMFlags"):
        load_guided_diffusion(path, {})  # the framework's reader: torch's advice to set weights_only=False never shows


def test_missing_checkpoint_error_says_what_goes_where(tmp_path) -> None:
    with pytest.raises(MissingWeightsError) as error:
        load_guided_diffusion(tmp_path / "256x256_diffusion_uncond.pt")
    message = str(error.value)
    assert str(tmp_path / "256x256_diffusion_uncond.pt") in message
    assert "openaipublic" in message and "never downloads" in message


def test_default_location_is_the_weights_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "256x256_diffusion_uncond.pt")):
        load_guided_diffusion()


def test_leftover_keys_are_an_error(adm_fixtures) -> None:
    config = json.loads((adm_fixtures / "adm_tiny_config.json").read_text())
    state = load_file(adm_fixtures / "adm_tiny_state_dict.safetensors")
    state["label_emb.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="left unmapped"):
        convert_adm_state_dict(state, ADMFlags.from_guided_diffusion(config["config"]))


def test_class_conditional_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="class_cond"):
        ADMFlags.from_guided_diffusion({"class_cond": True})
