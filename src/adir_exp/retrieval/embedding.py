"""Embedding a collection with Lightning's predict loop: one or many devices (DDP), shards written as they finish.

Data flow: :class:`UnitBatches` (an ``IterableDataset``; DataLoader workers decode and preprocess) yields batches
that never straddle a unit → :class:`EmbeddingModule.predict_step` encodes them → :class:`ShardWriter` gathers a
unit's batches and writes its shard when the unit's last batch arrives. Units are dealt to ranks first
(``units[rank::world_size]``), then to the workers of each rank, so no two processes write the same shard.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from adir_exp.retrieval.collection import Unit
from adir_exp.retrieval.encoders import ImageEncoder
from adir_exp.retrieval.preprocess import Preprocess
from adir_exp.retrieval.shards import Shard, write_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig:
    """How to run the embedding (``adir-index build`` flags map onto these)."""

    batch_size: int = 64
    num_workers: int = 2
    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    progress: bool = True


class UnitBatches(IterableDataset):
    """Decoded, preprocessed batches of the units assigned to this rank and worker; unreadable items reported."""

    def __init__(self, units: list[Unit], preprocess: Preprocess, batch_size: int, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.units = units
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def assigned(self) -> list[Unit]:
        """The units this rank embeds."""
        return self.units[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        units = self.assigned()
        worker = get_worker_info()
        if worker is not None:
            torch.set_num_threads(1)  # workers decode; the cores' BLAS threads belong to the encoder
            units = units[worker.id :: worker.num_workers]
        for unit in units:
            yield from self._unit_batches(unit)

    def _unit_batches(self, unit: Unit) -> Iterator[dict[str, Any]]:
        pixels: list[torch.Tensor] = []
        ids: list[str] = []
        paths: list[str] = []
        skipped: list[tuple[str, str]] = []
        for item, data in unit.read():
            if isinstance(data, Exception):
                skipped.append((item.path, f"{type(data).__name__}: {data}"))
                continue
            try:
                with Image.open(io.BytesIO(data)) as image:
                    pixels.append(self.preprocess.load(image))
            except Exception as error:
                skipped.append((item.path, f"{type(error).__name__}: {error}"))
                continue
            ids.append(item.id)
            paths.append(item.path)
            if len(pixels) == self.batch_size:
                yield self._batch(unit.index, pixels, ids, paths, skipped, last=False)
                pixels, ids, paths, skipped = [], [], [], []
        yield self._batch(unit.index, pixels, ids, paths, skipped, last=True)

    def _batch(
        self,
        unit: int,
        pixels: list[torch.Tensor],
        ids: list[str],
        paths: list[str],
        skipped: list[tuple[str, str]],
        last: bool,
    ) -> dict[str, Any]:
        size = self.preprocess.size
        stacked = torch.stack(pixels) if pixels else torch.empty(0, 3, size, size)
        return {"unit": unit, "ids": ids, "paths": paths, "pixels": stacked, "skipped": skipped, "last": last}


class EmbeddingModule(L.LightningModule):
    """Wraps an encoder for ``trainer.predict``."""

    def __init__(self, encoder: ImageEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        pixels = batch["pixels"]
        if len(pixels):
            embeddings = self.encoder.encode_images(pixels).numpy()
        else:
            embeddings = np.empty((0, self.encoder.embed_dim), dtype=np.float32)
        return {**{k: v for k, v in batch.items() if k != "pixels"}, "embeddings": embeddings}


@dataclass
class _OpenShard:
    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class ShardWriter(BasePredictionWriter):
    """Writes a unit's shard once its last batch is predicted; shows progress on rank 0."""

    def __init__(self, directory: Path, units: list[Unit], progress: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.directory = directory
        self.units = units
        self.progress = progress
        self.written: list[int] = []
        self._open: dict[int, _OpenShard] = {}
        self._bar: tqdm | None = None
        self._skipped = 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.progress and trainer.is_global_zero:
            sizes = [unit.size for unit in self.units[:: trainer.world_size]]  # rank 0's share
            total = None if None in sizes else sum(sizes)
            self._bar = tqdm(total=total, unit="img", desc="embedding", dynamic_ncols=True)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        shard = self._open.setdefault(prediction["unit"], _OpenShard())
        shard.ids.extend(prediction["ids"])
        shard.paths.extend(prediction["paths"])
        shard.embeddings.append(prediction["embeddings"])
        shard.skipped.extend(prediction["skipped"])
        for path, reason in prediction["skipped"]:
            log.warning("skipping unreadable image %s (%s)", path, reason)
        self._skipped += len(prediction["skipped"])
        if prediction["last"]:
            del self._open[prediction["unit"]]
            embeddings = np.concatenate(shard.embeddings)  # every batch adds a block, (0, D) when all unreadable
            write_shard(self.directory, prediction["unit"], Shard(shard.ids, shard.paths, embeddings, shard.skipped))
            self.written.append(prediction["unit"])
        if self._bar is not None:
            self._bar.update(len(prediction["ids"]) + len(prediction["skipped"]))
            self._bar.set_postfix(shards=len(self.written), skipped=self._skipped, refresh=False)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._open:
            raise RuntimeError(f"units {sorted(self._open)} ended without their last batch")


class UnitDataModule(L.LightningDataModule):
    """Builds the loader once the trainer knows this process's rank and the world size."""

    def __init__(self, units: list[Unit], preprocess: Preprocess, config: EmbedConfig) -> None:
        super().__init__()
        self.units = units
        self.preprocess = preprocess
        self.config = config

    def predict_dataloader(self) -> DataLoader:
        dataset = UnitBatches(
            self.units, self.preprocess, self.config.batch_size, self.trainer.global_rank, self.trainer.world_size
        )
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=None,  # the dataset batches itself so that batches end with their unit
            num_workers=workers,
            pin_memory=isinstance(self.trainer.accelerator, CUDAAccelerator),
            prefetch_factor=4 if workers else None,
        )


def embed_units(units: list[Unit], encoder: ImageEncoder, directory: Path, config: EmbedConfig) -> L.Trainer:
    """Embed ``units`` into shards under ``directory``; returns the trainer (its strategy can sync ranks)."""
    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=config.precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,  # units are dealt to ranks by UnitBatches
    )
    trainer.callbacks.append(ShardWriter(directory, units, config.progress))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*infer the batch indices.*")  # the writer does not use them
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # inside Lightning itself
        datamodule = UnitDataModule(units, encoder.preprocess, config)
        trainer.predict(EmbeddingModule(encoder), datamodule=datamodule, return_predictions=False)
    return trainer
