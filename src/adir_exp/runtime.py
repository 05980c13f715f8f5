"""Where computation runs: one rule for turning a configured device name into a torch device."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when available; anything else is a torch device string (``cpu``, ``cuda:1``)."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
