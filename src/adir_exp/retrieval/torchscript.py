"""Read the tensors of a TorchScript archive without running anything from it.

OpenAI ships CLIP as TorchScript archives (``ViT-L-14.pt``). ``torch.load(weights_only=True)`` refuses them,
``torch.load(weights_only=False)`` unpickles arbitrary Python (a file that merely looks like an archive runs
its ``__reduce__``), and ``torch.jit.load`` is no sandbox either: it runs the archive's TorchScript
``__setstate__`` methods, which can write any file (``aten::save``). The weights themselves are plain data:
``<name>/data.pkl`` pickles the module tree, whose tensors point at raw storages ``<name>/data/<key>``.
This module unpickles that tree with a whitelist: TorchScript classes become inert attribute holders,
tensors are rebuilt from the storages, every other global is refused.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from adir_exp.weights import CheckpointError


def is_torchscript_archive(path: str | Path) -> bool:
    """OpenAI's CLIP checkpoints (e.g. ``ViT-L-14.pt``) are TorchScript archives, which hold a ``code/`` folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


# Legacy storage classes name the element type of a tensor's storage in the pickle.
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for an instance of a TorchScript class (``__torch__.*``): keeps its pickled state, runs nothing."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _rebuild_tensor(storage: tuple[torch.UntypedStorage, torch.dtype], offset: int, size, stride, *_) -> torch.Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` does for the tensor itself (grad flags and hooks are dropped)."""
    data, dtype = storage
    return torch.empty(0, dtype=dtype).set_(data, offset, size, stride)


def _value(value: Any, *_: Any) -> Any:
    """TorchScript's list builders and type tags wrap a value; the value is all that matters here."""
    return value


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.jit._pickle", "restore_type_tag"): _value,
    ("torch.jit._pickle", "build_intlist"): _value,
    ("torch.jit._pickle", "build_doublelist"): _value,
    ("torch.jit._pickle", "build_boollist"): _value,
    ("torch.jit._pickle", "build_tensorlist"): _value,
}


class _WeightsUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, root: str, path: Path) -> None:
        super().__init__(io.BytesIO(archive.read(f"{root}/data.pkl")))
        self._archive, self._root, self._path = archive, root, path
        self._storages: dict[str, torch.UntypedStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        raise CheckpointError(
            f"{self._path}: refusing to load {module}.{name}; a weight archive holds tensors, not code to run"
        )

    def persistent_load(self, pid: Any) -> tuple[torch.UntypedStorage, torch.dtype]:
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{self._path}: unexpected storage reference {pid!r}")
        if key not in self._storages:
            raw = bytearray(self._archive.read(f"{self._root}/data/{key}"))
            size = numel * torch.empty(0, dtype=dtype).element_size()
            if len(raw) < size:
                raise CheckpointError(f"{self._path}: storage {key} holds {len(raw)} bytes, {size} expected")
            data = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            self._storages[key] = data.untyped_storage()
        return self._storages[key], dtype


def _named_tensors(value: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Tensor attributes of the module tree by dotted path: the names ``state_dict()`` gives them."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, _ScriptObject) and isinstance(value.state, dict):
        for name, item in value.state.items():
            yield from _named_tensors(item, f"{prefix}.{name}" if prefix else str(name))


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archived module (parameters, buffers, tensor constants), on the CPU."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a zip file, so not a TorchScript archive")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        roots = {name.split("/")[0] for name in names if name.count("/") == 1 and name.endswith("/data.pkl")}
        if len(roots) != 1 or not any(name.startswith(f"{next(iter(roots))}/code/") for name in names):
            raise CheckpointError(f"{path} is not a TorchScript archive (one <name>/data.pkl and <name>/code/)")
        try:
            tree = _WeightsUnpickler(archive, roots.pop(), path).load()
        except CheckpointError:
            raise
        except Exception as error:  # a malformed pickle can fail in many ways; each means "no weights here"
            raise CheckpointError(f"{path}: cannot read the TorchScript archive's weights ({error!r})") from error
    return dict(_named_tensors(tree, ""))
