import numpy as np
from retrieval_helpers import write_collection
from torch.utils.data import DataLoader

from adir_exp.retrieval.build import build_index
from adir_exp.retrieval.collection import plan_units
from adir_exp.retrieval.embedding import EmbedConfig, UnitBatches, embed_units
from adir_exp.retrieval.preprocess import Preprocess
from adir_exp.retrieval.shards import finished_units, read_shard

PRE = Preprocess(16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _ids(batches):
    return [i for batch in batches for i in batch["ids"]]


def test_batches_never_straddle_units_and_mark_their_end(tmp_path):
    write_collection(tmp_path / "col", 7)
    units = plan_units(tmp_path / "col", shard_size=3)
    batches = list(UnitBatches(units, PRE, batch_size=2))
    assert [(b["unit"], len(b["ids"]), b["last"]) for b in batches] == [
        (0, 2, False),
        (0, 1, True),
        (1, 2, False),
        (1, 1, True),
        (2, 1, True),
    ]
    assert batches[0]["pixels"].shape == (2, 3, 16, 16)


def test_units_are_dealt_to_ranks_and_workers_without_overlap(tmp_path):
    write_collection(tmp_path / "col", 10)
    units = plan_units(tmp_path / "col", shard_size=1)
    seen = []
    for rank in range(2):
        dataset = UnitBatches(units, PRE, batch_size=4, rank=rank, world_size=2)
        seen.append(_ids(DataLoader(dataset, batch_size=None, num_workers=2)))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(item.id for unit in units for item in unit.items)


def test_multi_worker_build_matches_in_process_build(tmp_path, tiny_clip, fast_embed):
    write_collection(tmp_path / "col", 9)
    build_index(tmp_path / "col", tmp_path / "serial", tiny_clip, shard_size=2, embed=fast_embed)
    workers = EmbedConfig(batch_size=3, num_workers=2, accelerator="cpu", devices=1, progress=True)
    build_index(tmp_path / "col", tmp_path / "workers", tiny_clip, shard_size=2, embed=workers)
    np.testing.assert_allclose(
        np.load(tmp_path / "serial" / "embeddings.npy"), np.load(tmp_path / "workers" / "embeddings.npy"), atol=1e-6
    )


def test_lightning_ddp_predict_loop_writes_every_shard(tmp_path, tiny_clip):
    """The multi-GPU path (strategy ddp) run on CPU with one process: same loop, same writer, gloo backend."""
    write_collection(tmp_path / "col", 5)
    units = plan_units(tmp_path / "col", shard_size=2)
    config = EmbedConfig(batch_size=2, num_workers=0, accelerator="cpu", devices=1, strategy="ddp", progress=False)
    trainer = embed_units(units, tiny_clip, tmp_path / "shards", config)
    assert trainer.world_size == 1 and type(trainer.strategy).__name__ == "DDPStrategy"
    assert finished_units(tmp_path / "shards") == {0, 1, 2}
    shard = read_shard(tmp_path / "shards" / "shard-000002.npz")
    assert shard.ids == ["b/img004.png"] and shard.embeddings.shape == (1, tiny_clip.embed_dim)
