"""Adapters as artifacts: the LoRA weights of one adaptation in peft's ``save_pretrained`` layout, with what made them.

An adapter is a directory that plain peft and diffusers load without this package::

    <method>-<key8>_adapter/
        adapter_config.json               peft's LoraConfig (r, lora_alpha, lora_dropout, target_modules: the
                                          resolved module names, init_lora_weights), written by peft
        adapter_model.safetensors         the LoRA weights keyed as PeftModel.save_pretrained keys them
                                          (``base_model.model.conv_in.lora_A.weight``); header: format=pt and
                                          ``adir_adapter`` (the JSON below), so the file alone still says what it is
        adir_adapter.json                 ours: format, base_model, task, k, image_ids, seed, lora (add_lora's kwargs)
        pytorch_lora_weights.safetensors  Stable Diffusion UNets only: the same weights in diffusers' pipeline
                                          layout (``unet.<module>.lora_A.weight``), written by diffusers

:func:`load_adapter` re-injects exactly those adapters and loads the weights, so a reconstruction can be
repeated without adapting again (``adir-run model.adapter=<directory>``). It also reads the single
``.safetensors`` files of format ``adir-lora/1`` (unprefixed keys, the metadata as header strings).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffusers import UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from peft.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from adir_exp.adaptation.lora import ADAPTER_NAME, add_lora, lora_parameters

FORMAT = "adir-lora/2"
LEGACY_FORMAT = "adir-lora/1"
METADATA_NAME = "adir_adapter.json"
HEADER_KEY = "adir_adapter"
PEFT_PREFIX = "base_model.model."  # what PeftModel.save_pretrained puts before module names


class AdapterFileError(ValueError):
    """The path is not an adapter this framework wrote, or the adapter does not fit the network it is loaded into."""


@dataclass(frozen=True)
class AdapterMetadata:
    """What an adapter was fitted for; ``lora`` is the keyword arguments of :func:`add_lora` that rebuild it."""

    base_model: str
    task: str
    image_ids: tuple[str, ...]
    seed: int
    lora: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.image_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "base_model": self.base_model, "task": self.task, "k": self.k,
                "image_ids": list(self.image_ids), "seed": self.seed, "lora": self.lora}  # fmt: skip

    @classmethod
    def from_dict(cls, metadata: dict[str, Any], source: str) -> AdapterMetadata:
        found = metadata.get("format")
        if found != FORMAT:
            raise AdapterFileError(f"{source} is not an ADIR adapter (format {found!r}, not {FORMAT!r})")
        return cls(metadata["base_model"], metadata["task"], tuple(metadata["image_ids"]), int(metadata["seed"]),
                   metadata["lora"])  # fmt: skip

    @classmethod
    def from_header(cls, header: dict[str, str] | None, source: str) -> AdapterMetadata:
        """From a safetensors header: this format's ``adir_adapter`` JSON, or the string keys of adir-lora/1."""
        header = header or {}
        if HEADER_KEY in header:
            return cls.from_dict(json.loads(header[HEADER_KEY]), source)
        if header.get("format") != LEGACY_FORMAT:
            expected = f"metadata {HEADER_KEY!r} or format {LEGACY_FORMAT!r}"
            raise AdapterFileError(f"{source} is not an ADIR adapter file ({expected} missing)")
        return cls(header["base_model"], header["task"], tuple(json.loads(header["image_ids"])), int(header["seed"]),
                   json.loads(header["lora_config"]))  # fmt: skip


def save_adapter(network: nn.Module, directory: str | Path, metadata: AdapterMetadata) -> Path:
    """Write the network's LoRA adapter and ``metadata`` to ``directory`` (created) in peft's layout."""
    directory = Path(directory)
    if not lora_parameters(network):
        raise AdapterFileError(f"{type(network).__name__} carries no LoRA adapter to save")
    config = copy.deepcopy(network.peft_config[ADAPTER_NAME])
    config.inference_mode = True  # as PeftModel.save_pretrained writes it
    config.target_modules = sorted(config.target_modules)  # a set in peft: sorted, the file is the same every run
    state = get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME)
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    described = metadata.to_dict()
    config.save_pretrained(str(directory), auto_mapping_dict={"base_model_class": type(network).__name__,
                                                              "parent_library": type(network).__module__})  # fmt: skip
    save_file({PEFT_PREFIX + k: v for k, v in state.items()}, str(directory / SAFETENSORS_WEIGHTS_NAME),
              metadata={"format": "pt", HEADER_KEY: json.dumps(described)})  # fmt: skip
    (directory / METADATA_NAME).write_text(json.dumps(described, indent=2) + "\n")
    if isinstance(network, UNet2DConditionModel):  # pipeline.load_lora_weights(directory) reads only this layout
        StableDiffusionLoraLoaderMixin.save_lora_weights(directory, unet_lora_layers=state,
                                                         unet_lora_adapter_metadata=config.to_dict())  # fmt: skip
    return directory


def read_metadata(path: str | Path) -> AdapterMetadata:
    """An adapter directory's ``adir_adapter.json``, or the header of a weights file (this format or adir-lora/1)."""
    path = Path(path)
    if path.is_dir():
        described = path / METADATA_NAME
        if not described.is_file():
            raise AdapterFileError(f"{path} is not an ADIR adapter directory ({METADATA_NAME} missing)")
        return AdapterMetadata.from_dict(json.loads(described.read_text()), str(path))
    with safe_open(str(path), framework="pt") as handle:
        return AdapterMetadata.from_header(handle.metadata(), str(path))


def load_adapter(
    network: nn.Module, path: str | Path, base_model: str | None = None, fused: bool | None = None
) -> AdapterMetadata:
    """Inject the adapter's LoRA configuration into ``network`` (which must carry no adapter yet) and load its weights.

    ``path``: an adapter directory, its ``adapter_model.safetensors``, or an adir-lora/1 file. ``base_model``
    (e.g. the run's ``model.name``) must match the name the adapter was fitted on; ``fused`` as in :func:`add_lora`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"adapter not found: {path}")
    metadata = read_metadata(path)
    weights = path / SAFETENSORS_WEIGHTS_NAME if path.is_dir() else path
    if not weights.is_file():
        raise AdapterFileError(f"{path} has no {SAFETENSORS_WEIGHTS_NAME}")
    if base_model is not None and metadata.base_model != base_model:
        raise AdapterFileError(
            f"{path} was fitted on base model {metadata.base_model!r}, not {base_model!r}; "
            f"select model={metadata.base_model} or adapt again"
        )
    add_lora(network, **metadata.lora, fused=fused)
    try:  # peft drops the "base_model.model." of PeftModel keys for a network that is not a PeftModel
        result = set_peft_model_state_dict(network, load_file(str(weights)), adapter_name=ADAPTER_NAME)
    except RuntimeError as error:  # same layer names, other widths: torch lists every mismatch, show the first
        first = next((line.strip() for line in str(error).splitlines() if "mismatch" in line), str(error))
        fitted = metadata.base_model
        raise AdapterFileError(f"{path} does not fit this network (fitted on {fitted!r}): {first}") from error
    missing = [key for key in result.missing_keys if "lora_" in key]
    if result.unexpected_keys or missing:
        raise AdapterFileError(
            f"{path} does not fit this network: unexpected {result.unexpected_keys[:5]}, missing {missing[:5]}"
        )
    return metadata
