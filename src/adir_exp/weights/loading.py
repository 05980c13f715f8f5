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
    except (RuntimeError, KeyError, EOFError) as error:  # a TorchScript archive, another format, a truncated file
        raise not_tensor_file(path, error) from error


def not_tensor_file(path: str | Path, error: Exception) -> CheckpointError:
    """The error for a file torch cannot read as a state dict. torch's own text for a TorchScript archive advises
    ``weights_only=False``, which would run the archive's code; this one says what the file is and what would do."""
    what = "a TorchScript archive" if "TorchScript" in str(error) else f"unreadable as one ({type(error).__name__})"
    return CheckpointError(
        f"{path} is not a plain tensor file (a torch.save'd state dict): {what}; refusing to load it. "
        "Save the model's state_dict, or use .safetensors."
    )


def unsafe_checkpoint(path: str | Path, error: pickle.UnpicklingError) -> CheckpointError:
    """The error for a file ``weights_only`` refused. torch's own message suggests ``weights_only=False`` or
    allowlisting the offending global, which is exactly what must not happen; this one names the global only."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    return CheckpointError(
        f"{path} holds Python objects besides tensors{f' ({found[1]})' if found else ''}, which could run code "
        "when unpickled; refusing to load it. Save the model's state_dict, or use .safetensors."
    )
