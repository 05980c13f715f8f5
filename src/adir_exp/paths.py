"""Where the framework keeps weights, caches and bundled data.

Hub-aware libraries (torch.hub, huggingface_hub, pyiqa) read their cache locations from the environment when
they are imported, so :func:`configure_environment` must run before they are imported; every console script
calls it first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


def adir_home() -> Path:
    """Root of the framework's caches (``$ADIR_HOME``, default ``~/.cache/adir_exp``)."""
    return Path(os.environ.get("ADIR_HOME", Path.home() / ".cache" / "adir_exp")).expanduser()


def weights_dir() -> Path:
    """Where user-supplied checkpoints (GD, SD, CLIP, MUSIQ) are looked up (``$ADIR_WEIGHTS``)."""
    return Path(os.environ.get("ADIR_WEIGHTS", adir_home() / "weights")).expanduser()


def configure_environment() -> None:
    """Point torch.hub / Hugging Face caches at the framework's cache and keep the hubs offline.

    Existing values win, so a user who already has an HF cache keeps it.
    """
    home = adir_home()
    os.environ.setdefault("TORCH_HOME", str(home / "torch"))
    os.environ.setdefault("HF_HOME", str(home / "huggingface"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextmanager
def naming_failures(path: str | Path) -> Iterator[None]:
    """Give an ``OSError`` raised while writing ``path`` the file's name (a full disk fails in ``write``, whose
    error names no file), so the command can say which file could not be written."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error
