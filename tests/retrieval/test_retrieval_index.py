import faiss
import numpy as np
import pytest

from adir_exp.retrieval.index import (
    EmbeddingIndex,
    IndexConfig,
    IndexNotFoundError,
    RetrievalIndexError,
    assemble_index,
    faiss_gpus,
)
from adir_exp.retrieval.shards import Shard, write_shard


def clustered(rng, n, dim=32, clusters=40, spread=0.35):
    """Unit vectors around random centres: the structure IVF exploits (and real embeddings have)."""
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_index(tmp_path, vectors, config, shard_rows=1000):
    shard_dir = tmp_path / "shards"
    units = range(0, len(vectors), shard_rows)
    for unit, start in enumerate(units):
        block = vectors[start : start + shard_rows]
        ids = [f"v{start + i}" for i in range(len(block))]
        write_shard(shard_dir, unit, Shard(ids, [f"/data/{i}.png" for i in ids], block, []))
    assemble_index(shard_dir, range(len(units)), tmp_path, "test-encoder", vectors.shape[1], config, "synthetic")
    return EmbeddingIndex(tmp_path)


def test_flat_index_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    vectors = clustered(rng, 3000)
    index = make_index(tmp_path, vectors, IndexConfig())
    assert index.kind == "flat" and len(index) == 3000 and index.ids[1234] == "v1234"
    queries = clustered(rng, 10)
    sims, rows = index.search(queries, 25)
    expected = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :25]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(sims, np.take_along_axis(queries @ vectors.T, expected, 1), atol=1e-5)


def test_auto_switches_to_ivfpq_past_the_threshold():
    assert IndexConfig(ivfpq_min_size=100).resolve(99) == "flat"
    assert IndexConfig(ivfpq_min_size=100).resolve(100) == "ivfpq"
    assert IndexConfig(kind="flat").resolve(10**9) == "flat"
    with pytest.raises(ValueError):
        IndexConfig(kind="hnsw").resolve(1)


def test_ivfpq_recall_and_exact_distances(tmp_path):
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 6000)
    config = IndexConfig(kind="ivfpq", nlist=32, m=8, nbits=6, nprobe=8, refine=10, train_size=3000)
    index = make_index(tmp_path, vectors, config)
    assert index.kind == "ivfpq" and (tmp_path / "ivfpq.faiss").is_file()
    queries = clustered(rng, 50)
    sims, rows = index.search(queries, 20)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :20]
    recall = np.mean([len(set(r) & set(t)) / 20 for r, t in zip(rows, truth, strict=True)])
    assert recall >= 0.9
    # candidates are re-ranked with the stored embeddings: reported similarities are exact
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, vectors[rows]), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-7)


def test_ivfpq_without_refinement_loses_recall(tmp_path):
    """Guards the refinement step: the same index ranked by PQ codes alone does measurably worse."""
    rng = np.random.default_rng(1)
    vectors = clustered(rng, 6000)
    config = IndexConfig(kind="ivfpq", nlist=32, m=8, nbits=6, nprobe=8, refine=10, train_size=3000)
    make_index(tmp_path, vectors, config)
    queries = clustered(rng, 50)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :20]

    def recall(index):
        rows = index.search(queries, 20)[1]
        return np.mean([len(set(r) & set(t)) / 20 for r, t in zip(rows, truth, strict=True)])

    assert recall(EmbeddingIndex(tmp_path, refine=1)) < recall(EmbeddingIndex(tmp_path)) - 0.05


def test_relative_item_paths_are_read_from_the_index_directory_wherever_it_moves(tmp_path):
    """A bundled index (the demo's) stores paths relative to itself; absolute ones are kept as they are."""
    vectors = clustered(np.random.default_rng(5), 2)
    (tmp_path / "bundle" / "index").mkdir(parents=True)
    write_shard(tmp_path / "shards", 0, Shard(["a.png", "b.png"], ["../images/a.png", "/data/b.png"], vectors, []))
    assemble_index(tmp_path / "shards", [0], tmp_path / "bundle" / "index", "test-encoder", 32, IndexConfig(), "x")
    moved = tmp_path / "elsewhere"
    (tmp_path / "bundle").rename(moved)
    index = EmbeddingIndex(moved / "index")
    assert index.paths == [str(moved / "images" / "a.png"), "/data/b.png"]


def test_missing_or_incomplete_index(tmp_path):
    with pytest.raises(IndexNotFoundError, match="adir-index build"):
        EmbeddingIndex(tmp_path)


def test_m_must_divide_the_dimension(tmp_path):
    vectors = clustered(np.random.default_rng(2), 500, dim=30)
    with pytest.raises(ValueError, match="divide"):
        make_index(tmp_path, vectors, IndexConfig(kind="ivfpq", nlist=4, m=8, nbits=4, train_size=500))


def test_search_stays_on_the_cpu_unless_asked(tmp_path):
    index = make_index(tmp_path, clustered(np.random.default_rng(3), 300), IndexConfig())
    assert index.device == "cpu" and type(index._index) is faiss.IndexFlatIP


def test_gpu_search_needs_a_faiss_gpu_build(tmp_path, monkeypatch):
    make_index(tmp_path, clustered(np.random.default_rng(3), 300), IndexConfig())
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)  # faiss-cpu, or faiss-gpu on a machine without GPU
    with pytest.raises(RetrievalIndexError, match=r"pip install -e '\.\[gpu\]'"):
        EmbeddingIndex(tmp_path, device="cuda")
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        EmbeddingIndex(tmp_path, device="gpu")


def test_gpu_devices_name_faiss_gpus(monkeypatch):
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    assert faiss_gpus("cpu") == ()
    assert faiss_gpus("cuda") == (0, 1)
    assert faiss_gpus("cuda:1") == (1,)
    with pytest.raises(RetrievalIndexError, match="sees 2 GPU"):
        faiss_gpus("cuda:2")


@pytest.mark.skipif(faiss.get_num_gpus() == 0, reason="FAISS sees no GPU (faiss-cpu, the default build, never does)")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_gpu_search_agrees_with_the_cpu(tmp_path, device):
    rng = np.random.default_rng(4)
    vectors, queries = clustered(rng, 6000), clustered(rng, 50)
    for kind, config in {
        "flat": IndexConfig(kind="flat"),
        "ivfpq": IndexConfig(kind="ivfpq", nlist=32, m=8, nbits=6, nprobe=8, refine=10, train_size=3000),
    }.items():
        (tmp_path / kind).mkdir()
        make_index(tmp_path / kind, vectors, config)
        cpu_sims, cpu_rows = EmbeddingIndex(tmp_path / kind).search(queries, 20)
        gpu_sims, gpu_rows = EmbeddingIndex(tmp_path / kind, device=device).search(queries, 20)
        overlap = np.mean([len(set(g) & set(c)) / 20 for g, c in zip(gpu_rows, cpu_rows, strict=True)])
        assert overlap >= (0.99 if kind == "flat" else 0.9), kind
        np.testing.assert_allclose(gpu_sims[:, 0], cpu_sims[:, 0], atol=1e-4)
