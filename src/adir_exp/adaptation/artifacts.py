"""Adapters as artifacts: the LoRA weights of one adaptation in peft's safetensors layout, with what made them.

A file holds ``get_peft_model_state_dict`` of the adapted network (keys like ``conv_in.lora_A.weight``) and
string metadata: ``format``, ``base_model``, ``task``, ``k`` (number of adaptation images), ``image_ids``
(JSON list), ``seed`` and ``lora_config`` (JSON: rank, alpha, dropout and the resolved target module names).
:func:`load_adapter` re-injects exactly those adapters and loads the weights, so a reconstruction can be
repeated without adapting again (``adir-run adaptation.load=<file>``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from adir_exp.adaptation.lora import ADAPTER_NAME, add_lora, lora_parameters

FORMAT = "adir-lora/1"


class AdapterFileError(ValueError):
    """The file is not an adapter this framework wrote, or does not fit the network it is loaded into."""


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

    def to_strings(self) -> dict[str, str]:
        """safetensors metadata must be str → str."""
        return {
            "format": FORMAT,
            "base_model": self.base_model,
            "task": self.task,
            "k": str(self.k),
            "image_ids": json.dumps(list(self.image_ids)),
            "seed": str(self.seed),
            "lora_config": json.dumps(self.lora),
        }

    @classmethod
    def from_strings(cls, metadata: dict[str, str] | None, source: str) -> AdapterMetadata:
        if not metadata or metadata.get("format") != FORMAT:
            raise AdapterFileError(f"{source} is not an ADIR adapter file (metadata format {FORMAT!r} missing)")
        return cls(
            base_model=metadata["base_model"],
            task=metadata["task"],
            image_ids=tuple(json.loads(metadata["image_ids"])),
            seed=int(metadata["seed"]),
            lora=json.loads(metadata["lora_config"]),
        )


def save_adapter(network: nn.Module, path: str | Path, metadata: AdapterMetadata) -> Path:
    """Write the network's LoRA weights and ``metadata`` to ``path`` (a ``.safetensors`` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not lora_parameters(network):
        raise AdapterFileError(f"{type(network).__name__} carries no LoRA adapter to save")
    state = get_peft_model_state_dict(network, adapter_name=ADAPTER_NAME)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path), metadata=metadata.to_strings())
    return path


def read_metadata(path: str | Path) -> AdapterMetadata:
    with safe_open(str(path), framework="pt") as handle:
        return AdapterMetadata.from_strings(handle.metadata(), str(path))


def load_adapter(network: nn.Module, path: str | Path, base_model: str | None = None) -> AdapterMetadata:
    """Inject the file's LoRA configuration into ``network`` (which must carry no adapter yet) and load its weights.

    ``base_model`` (e.g. the run's ``model.name``) must match the name the adapter was fitted on.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adapter file not found: {path}")
    metadata = read_metadata(path)
    if base_model is not None and metadata.base_model != base_model:
        raise AdapterFileError(
            f"{path} was fitted on base model {metadata.base_model!r}, not {base_model!r}; "
            f"select model={metadata.base_model} or adapt again"
        )
    add_lora(network, **metadata.lora)
    try:
        result = set_peft_model_state_dict(network, load_file(str(path)), adapter_name=ADAPTER_NAME)
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
