"""The embedded default prior: a small DDPM trained here on registry-package photos (docs/prior.md)."""

from adir_exp.paths import ASSETS_DIR

PRIOR_DIR = ASSETS_DIR / "prior"  # the shipped export (load it with adir_exp.models.load_unet or model=adir_prior)

__all__ = ["PRIOR_DIR"]
