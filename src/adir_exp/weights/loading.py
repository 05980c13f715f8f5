"""Loading weight files as data: a file that holds more than tensors is refused, never unpickled.

``torch.load(weights_only=False)`` runs whatever a pickle's ``__reduce__`` names, so a checkpoint someone hands
over could run any command. Several libraries this framework drives load that way (pyiqa for MUSIQ, torchvision's
hub cache under lpips), so the framework opens those files itself.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A weight file holds something other than the weights asked for; the message names the file."""


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict, unpickled with ``weights_only=True`` (tensors and plain containers only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise unsafe_checkpoint(path, error) from error


def unsafe_checkpoint(path: str | Path, error: pickle.UnpicklingError) -> CheckpointError:
    """The error for a file ``weights_only`` refused. torch's own message suggests ``weights_only=False`` or
    allowlisting the offending global, which is exactly what must not happen; this one names the global only."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return CheckpointError(
        f"{path} holds Python objects besides tensors{f' ({found[1]})' if found else ''}, which could run code "
        "when unpickled; refusing to load it. Save the model's state_dict, or use .safetensors."
    )
