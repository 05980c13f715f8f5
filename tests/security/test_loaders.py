"""Every weight file a prior, an encoder or an adapter reads is data: a crafted file in its place is refused and
its payload never runs (issue 20; the metrics' files: test_metric_loaders.py).

The loaders: open_clip checkpoints (plain, TorchScript lookalikes, real TorchScript archives, a zip with a
top-level ``code/``), ADM checkpoints (``load_guided_diffusion``), diffusers directories (the embedded prior's
UNet and the SD pipelines: safetensors only, a pickled ``.bin`` is never read) and LoRA adapters (safetensors
only). Each case runs with torch's defaults and with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the ``marker``
fixture).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from adir_exp.adaptation import save_adapter
from adir_exp.adaptation.artifacts import (
    AdapterFileError,
    AdapterMetadata,
    load_adapter,
)
from adir_exp.adaptation.lora import add_lora
from adir_exp.models import random_adm
from adir_exp.models.guided_diffusion import load_guided_diffusion
from adir_exp.models.unet import load_unet
from adir_exp.paths import ASSETS_DIR
from adir_exp.priors.stable_diffusion import load_sd_upscaler
from adir_exp.retrieval.encoders import OpenClipEncoder
from adir_exp.weights import CheckpointError, load_tensors
from tests.adaptation.conftest import TINY_ADM
from tests.retrieval.retrieval_helpers import TINY_CLIP
from tests.security.crafted import (
    plant_code_zip,
    plant_pickle_bomb,
    plant_torchscript_bomb,
)

TORCH_ADVICE = "weights_only"  # torch's text for refused files suggests weights_only=False: never shown


def torchscript_lookalike(path: Path, marker: Path) -> Path:
    """A pickle bomb with a ``<name>/code/`` entry added, so it looks like an OpenAI TorchScript archive."""
    plant_pickle_bomb(path, marker)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"{archive.namelist()[0].split('/')[0]}/code/__torch__.py", "")
    return path


@pytest.fixture(scope="module")
def tiny_clip_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("open_clip") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return path


@pytest.mark.parametrize("craft", [plant_pickle_bomb, torchscript_lookalike, plant_torchscript_bomb],
                         ids=["pickle", "torchscript-lookalike", "torchscript-setstate"])
def test_open_clip_checkpoints_are_refused_without_running(craft, marker, tiny_clip_config, tmp_path) -> None:
    bomb = craft(tmp_path / "clip.pt", marker)
    with pytest.raises(CheckpointError, match=str(bomb)):
        OpenClipEncoder("tiny-clip", pretrained=None, checkpoint=str(bomb), model_config=str(tiny_clip_config))
    assert not marker.exists()


def test_a_zip_with_a_top_level_code_folder_is_one_line_naming_the_file(marker, tiny_clip_config, tmp_path) -> None:
    """Issue 20, item 8: torch's RuntimeError ("Expected hasRecord('version')") came out as a traceback."""
    archive = plant_code_zip(tmp_path / "clip.pt")
    with pytest.raises(CheckpointError, match=f"{archive} is not a plain tensor file") as error:
        OpenClipEncoder("tiny-clip", pretrained=None, checkpoint=str(archive), model_config=str(tiny_clip_config))
    assert "\n" not in str(error.value) and TORCH_ADVICE not in str(error.value)


@pytest.mark.parametrize("craft", [plant_pickle_bomb, plant_torchscript_bomb], ids=["pickle", "torchscript"])
def test_adm_checkpoints_are_read_as_tensors_only(craft, marker, tmp_path) -> None:
    """Issue 20, item 7: ``load_guided_diffusion`` called torch.load itself, and a TorchScript archive showed
    torch's advice to retry with weights_only=False."""
    bomb = craft(tmp_path / "256x256_diffusion_uncond.pt", marker)
    with pytest.raises(CheckpointError, match=str(bomb)) as error:
        load_guided_diffusion(str(bomb), TINY_ADM)
    assert not marker.exists() and TORCH_ADVICE not in str(error.value)


def test_a_torchscript_archive_is_named_as_one(marker, tmp_path) -> None:
    archive = plant_torchscript_bomb(tmp_path / "model.pt", marker)
    with pytest.raises(CheckpointError, match=f"{archive} is not a plain tensor file.*a TorchScript archive") as error:
        load_tensors(archive)
    assert TORCH_ADVICE not in str(error.value) and not marker.exists()


@pytest.fixture
def prior_copy(tmp_path: Path) -> Path:
    """The embedded prior's diffusers directory (config.json + safetensors), copied so files can be planted."""
    copy = tmp_path / "prior"
    copy.mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copyfile(ASSETS_DIR / "prior" / name, copy / name)
    return copy


def test_a_diffusers_unet_directory_never_reads_a_pickled_bin(marker, prior_copy) -> None:
    plant_pickle_bomb(prior_copy / "diffusion_pytorch_model.bin", marker)
    assert load_unet(prior_copy) is not None  # the safetensors beside it
    (prior_copy / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(OSError, match="diffusion_pytorch_model.safetensors"):
        load_unet(prior_copy)  # the .bin alone is refused, not unpickled
    assert not marker.exists()


def test_a_stable_diffusion_pipeline_never_reads_a_pickled_bin(marker, tiny_upscaler_dir, tmp_path) -> None:
    pipeline = shutil.copytree(tiny_upscaler_dir, tmp_path / "x4")
    (pipeline / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    plant_pickle_bomb(pipeline / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(OSError, match="safetensors"):
        load_sd_upscaler(pipeline, device="cpu")
    assert not marker.exists()


def test_an_adapter_is_read_from_safetensors_only(marker, tmp_path) -> None:
    network = random_adm(TINY_ADM, seed=0)
    names = add_lora(network, rank=4, alpha=8.0, targets="conv2d")
    lora = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": names}
    adapter = save_adapter(network, tmp_path / "adapter", AdapterMetadata("adm_tiny", "sr4", ("a.png",), 0, lora))
    plant_pickle_bomb(adapter / "adapter_model.bin", marker)
    load_adapter(random_adm(TINY_ADM, seed=0), adapter)  # the crafted .bin beside it is not read
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterFileError, match="adapter_model.safetensors"):
        load_adapter(random_adm(TINY_ADM, seed=0), adapter)
    assert not marker.exists()


def test_the_tensor_reader_refuses_a_pickle_bomb_even_when_torch_is_told_to_trust_files(marker, tmp_path) -> None:
    bomb = plant_pickle_bomb(tmp_path / "state.pt", marker)
    with pytest.raises(CheckpointError, match=f"{bomb} holds Python objects besides tensors"):
        load_tensors(bomb)
    assert not marker.exists()
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    assert torch.equal(load_tensors(tmp_path / "plain.pt")["w"], torch.ones(2))
