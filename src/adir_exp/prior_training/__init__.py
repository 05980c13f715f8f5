"""Training the embedded default prior (``adir-train-prior``): a small DDPM trained here on the corpus' photos
(:mod:`adir_exp.corpus`), its model card and its ×4 SR check (docs/prior.md)."""

from adir_exp.paths import ASSETS_DIR

PRIOR_DIR = ASSETS_DIR / "prior"  # the shipped export (load it with adir_exp.models.load_unet or model=adir_prior)

__all__ = ["PRIOR_DIR"]
