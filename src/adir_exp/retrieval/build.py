"""``adir-index build``: plan the collection, embed the units not yet done, assemble the index.

Resumable: ``manifest.json`` pins what the shards were made from (source listing, shard size, encoder). A rerun
with the same manifest embeds only the units without a shard; a different one is refused (``overwrite`` starts
over) so shards of two collections or two encoders never end up in one index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from adir_exp.retrieval.collection import plan_units
from adir_exp.retrieval.embedding import EmbedConfig, embed_units
from adir_exp.retrieval.encoders import ImageEncoder
from adir_exp.retrieval.index import (
    EMBEDDINGS_FILE,
    ITEMS_FILE,
    IVFPQ_FILE,
    META_FILE,
    SKIPPED_FILE,
    IndexConfig,
    RetrievalIndexError,
    assemble_index,
)
from adir_exp.retrieval.shards import finished_units

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
SHARDS_DIR = "shards"


class ManifestMismatchError(RetrievalIndexError):
    """The output directory holds shards of another collection, shard size or encoder."""


def _remove_build(out_dir: Path) -> None:
    """Delete only what a build writes, never other files a user keeps in that folder."""
    shutil.rmtree(out_dir / SHARDS_DIR, ignore_errors=True)
    for name in (MANIFEST_FILE, META_FILE, EMBEDDINGS_FILE, ITEMS_FILE, SKIPPED_FILE, IVFPQ_FILE):
        (out_dir / name).unlink(missing_ok=True)


def build_index(
    source: str | Path,
    out_dir: str | Path,
    encoder: ImageEncoder,
    shard_size: int = 10_000,
    embed: EmbedConfig | None = None,
    index: IndexConfig | None = None,
    overwrite: bool = False,
) -> dict | None:
    """Build (or resume building) the index of ``source`` in ``out_dir`` (default configs when ``None``).

    Returns the index metadata on the process that assembles it, ``None`` on the other DDP ranks.
    """
    embed = embed or EmbedConfig()
    index = index or IndexConfig()
    out_dir = Path(out_dir)
    if overwrite:
        _remove_build(out_dir)
    units = plan_units(source, shard_size)
    digest = hashlib.sha256("\n".join(unit.digest() for unit in units).encode()).hexdigest()
    manifest = {
        "source": str(source),
        "units": len(units),
        "shard_size": shard_size,
        "listing_sha256": digest,
        "encoder": encoder.name,
        "embed_dim": encoder.embed_dim,
    }
    manifest_path = out_dir / MANIFEST_FILE
    if manifest_path.is_file():
        previous = json.loads(manifest_path.read_text())
        changed = sorted(key for key in manifest if previous.get(key) != manifest[key])
        if changed:
            raise ManifestMismatchError(
                f"{out_dir} holds a build with different {', '.join(changed)}; "
                "pass overwrite=True (--overwrite) to start over or choose another output directory"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))

    shard_dir = out_dir / SHARDS_DIR
    done = finished_units(shard_dir)
    pending = [unit for unit in units if unit.index not in done]
    log.info("%d units: %d already embedded, %d to embed", len(units), len(units) - len(pending), len(pending))
    meta_path = out_dir / META_FILE
    if not pending and meta_path.is_file() and json.loads(meta_path.read_text())["config"] == asdict(index):
        log.info("index in %s is up to date", out_dir)
        return json.loads(meta_path.read_text())
    if pending:
        trainer = embed_units(pending, encoder, shard_dir, embed)
        trainer.strategy.barrier()
        if not trainer.is_global_zero:
            return None
    return assemble_index(
        shard_dir, (unit.index for unit in units), out_dir, encoder.name, encoder.embed_dim, index, str(source)
    )
