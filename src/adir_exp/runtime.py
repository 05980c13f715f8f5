"""Where computation runs: one rule for turning a configured device name into a torch device."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """The configured device does not exist on this machine."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks CUDA when available; anything else is a torch device string (``cpu``, ``cuda:1``), refused
    here when this machine has no such device (rather than by the first tensor moved there)."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"{name!r} is not a device (cpu, cuda, cuda:N, auto): {error}") from error
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        found = f"{torch.cuda.device_count()} CUDA device(s)" if torch.cuda.is_available() else "no CUDA GPU"
        raise DeviceError(f"{name!r} asked for, but torch sees {found} here; use device=cpu or device=auto")
    return device
