"""The console is part of the interface: one progress bar per long stage, the result table last, no library noise.

Called at the start of every command, after Hydra has set up logging: third-party loggers that announce
hardware, tips and library loading are raised to WARNING (those that warn about optional kernels never used
here, to ERROR), known third-party deprecation warnings are dropped, warnings print as one line, and console
log records go through ``tqdm.write`` so they never tear a bar.
"""

from __future__ import annotations

import logging
import sys
import warnings

from tqdm.auto import tqdm

NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "faiss", "faiss.loader",
                 "diffusers", "transformers", "huggingface_hub", "urllib3", "PIL", "matplotlib", "numexpr")
# Loggers whose warnings are noise here: bitsandbytes (imported by peft) looks for an optional CPU kernel on the Hub
# when imported, so every command that adapts or scores LPIPS would start with "Skipping publisher trust check…"
# (kernels, offline) and "Failed to load CPU gemm_4bit_forward…" (bitsandbytes); 4-bit layers are never used.
WARNING_NOISE_LOGGERS = ("kernels", "bitsandbytes")
THIRD_PARTY_DEPRECATIONS = (
    r".*isinstance\(treespec, LeafSpec\).*",  # lightning's pytree helper on torch ≥ 2.10
    r".*upcast_vae.*",
)


class TqdmHandler(logging.StreamHandler):
    """A console handler that prints above the progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never raise
            self.handleError(record)


def _one_line(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def quiet_console() -> None:
    import lightning.pytorch  # noqa: F401  (it sets its own loggers to INFO when imported: import it first)

    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in WARNING_NOISE_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in THIRD_PARTY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.formatwarning = _one_line
    root = logging.getLogger()
    for handler in list(root.handlers):
        stream = getattr(handler, "stream", None)
        if type(handler) is logging.StreamHandler and stream in (sys.stdout, sys.stderr):
            console = TqdmHandler(stream)
            console.setLevel(handler.level)
            console.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(message)s", "%H:%M:%S"))
            console.addFilter(lambda record: record.levelno >= logging.WARNING or record.name.startswith("adir_exp"))
            root.removeHandler(handler)
            root.addHandler(console)
