"""open_clip checkpoints come from users: loading one must never run code from it (issue 14, defect 1).

Three hostile files: a ``torch.save``d pickle whose ``__reduce__`` touches a marker file, the same with an empty
``<name>/code/__torch__.py`` entry so it looks like a TorchScript archive, and a real TorchScript archive whose
``__setstate__`` writes a marker through ``aten::save`` while ``torch.jit.load`` deserialises it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from retrieval_helpers import TINY_CLIP, write_collection

from adir_exp.retrieval.encoders import (
    CheckpointError,
    OpenClipEncoder,
    is_torchscript_archive,
)
from adir_exp.retrieval.torchscript import read_torchscript_tensors
from tests.security.crafted import plant_torchscript_bomb

SRC = Path(__file__).resolve().parents[2] / "src"


class TouchOnUnpickle:
    """Unpickling this calls ``Path.touch(marker)``: a harmless stand-in for ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def pickle_bomb(path: Path, marker: Path, torchscript_lookalike: bool) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": TouchOnUnpickle(marker)}, path)
    if torchscript_lookalike:
        with zipfile.ZipFile(path, "a") as archive:
            root = archive.namelist()[0].split("/")[0]
            archive.writestr(f"{root}/code/__torch__.py", "")
    return path


def openai_style_archive(path: Path) -> torch.nn.Module:
    """A tiny CLIP saved the way OpenAI shipped theirs: half-precision weights, traced, TorchScript archive.

    Returns the same weights as a float32 open_clip model, the reference for what loading must give.
    """
    from open_clip.model import CLIP, convert_weights_to_fp16

    model = CLIP(TINY_CLIP["embed_dim"], TINY_CLIP["vision_cfg"], TINY_CLIP["text_cfg"], quick_gelu=True).eval()
    convert_weights_to_fp16(model)
    reference = copy.deepcopy(model).float()
    image = torch.ones(1, 3, 32, 32, dtype=torch.float16)
    text = torch.zeros(1, 77, dtype=torch.int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated and warns about constants; OpenAI's files exist
        traced = torch.jit.trace_module(model, {"encode_image": (image,), "encode_text": (text,)}, check_trace=False)
    traced.save(str(path))
    return reference


def test_pickle_bomb_is_refused_without_running(tiny_clip_config, tmp_path):
    """(a) The encoder class: neither the lookalike nor the plain pickle may touch the marker."""
    marker = tmp_path / "MARKER"
    for lookalike in (True, False):
        bomb = pickle_bomb(tmp_path / f"bomb-{lookalike}.pt", marker, torchscript_lookalike=lookalike)
        assert is_torchscript_archive(bomb) == lookalike
        with pytest.raises(CheckpointError) as error:
            OpenClipEncoder("tiny-clip", pretrained=None, checkpoint=str(bomb), model_config=str(tiny_clip_config))
        assert not marker.exists()
        assert str(bomb) in str(error.value) and "getattr" in str(error.value)


def test_pickle_bomb_through_adir_index(tmp_path):
    """(b) The issue's command line, in a fresh interpreter: a clear error naming the file, no marker."""
    marker = tmp_path / "MARKER"
    bomb = pickle_bomb(tmp_path / "bomb.pt", marker, torchscript_lookalike=True)
    write_collection(tmp_path / "collection", 2)
    command = [sys.executable, "-m", "adir_exp.cli.index", "build", str(tmp_path / "collection")]
    command += ["-o", str(tmp_path / "index"), "--encoder", "open_clip"]
    command += ["--encoder-set", "model_name=ViT-B-32", "--encoder-set", f"checkpoint={bomb}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert not marker.exists()
    assert result.returncode == 1, result.stderr
    assert f"adir-index build: {bomb}" in result.stderr


def test_torchscript_setstate_does_not_run(tiny_clip_config, tmp_path):
    """``torch.jit.load`` runs an archive's ``__setstate__`` (which can write any file); the reader must not."""
    marker = tmp_path / "WRITTEN"
    archive = tmp_path / "setstate.pt"
    plant_torchscript_bomb(archive, marker)
    assert is_torchscript_archive(archive) and not marker.exists()
    with pytest.raises(CheckpointError) as error:
        OpenClipEncoder("tiny-clip", pretrained=None, checkpoint=str(archive), model_config=str(tiny_clip_config))
    assert not marker.exists()
    assert f"{archive} does not hold the weights of tiny-clip" in str(error.value)


def test_openai_torchscript_archive_loads(tiny_clip_config, tmp_path, monkeypatch):
    """A legitimate TorchScript CLIP still loads, without torch.jit.load and without weights_only=False."""
    import open_clip

    archive = tmp_path / "ViT-tiny.pt"
    reference = openai_style_archive(archive)
    assert is_torchscript_archive(archive)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load runs code from the archive")

    real_load, loads = torch.load, []
    monkeypatch.setattr(torch.jit, "load", refuse)
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw) or real_load(*a, **kw))
    encoder = OpenClipEncoder("tiny-clip", pretrained=None, checkpoint=str(archive), model_config=str(tiny_clip_config))
    assert all(kw.get("weights_only", True) for kw in loads)
    assert "sha256-" in encoder.name

    images = torch.stack([encoder.preprocess(torch.rand(3, 40, 40)) for _ in range(2)])
    torch.testing.assert_close(
        encoder.encode_images(images), torch.nn.functional.normalize(reference.encode_image(images))
    )
    tokens = open_clip.get_tokenizer("tiny-clip")
    texts = ["a photo of a cat", "a dog"]
    expected = torch.nn.functional.normalize(reference.encode_text(tokens(texts)))
    torch.testing.assert_close(encoder.encode_text(texts), expected)


def test_reader_names_tensors_like_state_dict(tmp_path):
    archive = tmp_path / "linear.pt"
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)).half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated
        torch.jit.trace(module, torch.ones(1, 3, dtype=torch.float16), check_trace=False).save(str(archive))
    tensors = read_torchscript_tensors(archive)
    assert set(tensors) == set(module.state_dict())
    for name, value in module.state_dict().items():
        assert tensors[name].dtype == torch.float16
        torch.testing.assert_close(tensors[name], value)


def test_reader_refuses_non_archives(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(1)}, plain)
    with pytest.raises(CheckpointError, match="TorchScript"):
        read_torchscript_tensors(plain)  # a torch.save archive has data.pkl but no code: still only tensors
    (tmp_path / "cfg.json").write_text(json.dumps(TINY_CLIP))
    with pytest.raises(CheckpointError, match="not a zip"):
        read_torchscript_tensors(tmp_path / "cfg.json")
