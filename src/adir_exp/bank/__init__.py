"""The adapter bank (docs/bank.md): LoRA adapters fitted once per neighbourhood of the retrieval collection, picked
by retrieval at test time, so that a reconstruction costs what GD's does (``adir-bank``, ``method=adir_bank``)."""

from adir_exp.bank.build import BuildReport, build_bank
from adir_exp.bank.neighbourhoods import (
    NeighbourhoodError,
    Neighbourhoods,
    nearest,
    partition,
)
from adir_exp.bank.store import AdapterBank, BankError, BankNotFoundError

__all__ = [
    "AdapterBank",
    "BankError",
    "BankNotFoundError",
    "BuildReport",
    "NeighbourhoodError",
    "Neighbourhoods",
    "build_bank",
    "nearest",
    "partition",
]
