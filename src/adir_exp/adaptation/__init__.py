"""Test-time adaptation (``adaptation`` config group): LoRA on the prior's network, fitted to adaptation images."""

from adir_exp.adaptation.artifacts import (
    AdapterFileError,
    AdapterMetadata,
    load_adapter,
    save_adapter,
)
from adir_exp.adaptation.callback import ReconstructionCallback
from adir_exp.adaptation.crops import (
    AdaptationDataModule,
    AdaptationDataWarning,
    AdaptationImageError,
)
from adir_exp.adaptation.fit import FitResult, LoRAFit
from adir_exp.adaptation.fused_lora import LoRAFusionError
from adir_exp.adaptation.gd_objective import GDObjective
from adir_exp.adaptation.lora import LoRATargetError, add_lora, merge_lora
from adir_exp.adaptation.module import LoRAAdaptation
from adir_exp.adaptation.objective import AdaptationObjective

__all__ = [
    "AdaptationDataModule",
    "AdaptationDataWarning",
    "AdaptationImageError",
    "AdaptationObjective",
    "AdapterFileError",
    "AdapterMetadata",
    "FitResult",
    "GDObjective",
    "LoRAAdaptation",
    "LoRAFit",
    "LoRAFusionError",
    "LoRATargetError",
    "ReconstructionCallback",
    "add_lora",
    "load_adapter",
    "merge_lora",
    "save_adapter",
]
