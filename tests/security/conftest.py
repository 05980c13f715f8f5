"""The security suite's switch: every crafted-file test runs with torch's defaults and with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, which turns every ``torch.load`` that does not pass ``weights_only``
itself into a full unpickle."""

from __future__ import annotations

from pathlib import Path

import pytest

FORCE_UNSAFE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@pytest.fixture(params=[False, True], ids=["torch-defaults", f"{FORCE_UNSAFE}=1"])
def marker(request: pytest.FixtureRequest, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a payload that ran would leave a file (its folder exists, so the payload could succeed); the
    environment set as the parameter says."""
    isolated_home.mkdir(parents=True, exist_ok=True)
    if request.param:
        monkeypatch.setenv(FORCE_UNSAFE, "1")
    else:
        monkeypatch.delenv(FORCE_UNSAFE, raising=False)
    return isolated_home / "MARKER"
