import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from retrieval_helpers import write_collection

from adir_exp.retrieval import build, embedding
from adir_exp.retrieval.build import ManifestMismatchError, build_index
from adir_exp.retrieval.collection import SourceError
from adir_exp.retrieval.distance import spherical_distance
from adir_exp.retrieval.encoders import OpenClipEncoder
from adir_exp.retrieval.index import EmptyCollectionError
from adir_exp.retrieval.query import EncoderMismatchError, Retriever


def brute_force(encoder, paths):
    """Embeddings of the files computed one by one, outside the loader pipeline."""
    with torch.no_grad():
        return encoder.encode_images(torch.stack([encoder.preprocess(Image.open(p)) for p in paths])).numpy()


def test_query_returns_the_exact_nearest_neighbours(tmp_path, tiny_clip, fast_embed):
    paths = write_collection(tmp_path / "col", 23)
    meta = build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, shard_size=5, embed=fast_embed)
    assert meta["count"] == 23 and meta["kind"] == "flat" and meta["encoder"] == tiny_clip.name

    retriever = Retriever(tmp_path / "idx", tiny_clip, k=7)
    ids = retriever.index.ids
    by_id = {p.relative_to(tmp_path / "col").as_posix(): p for p in paths}
    reference = brute_force(tiny_clip, [by_id[i] for i in ids])
    np.testing.assert_allclose(retriever.index.vectors(np.arange(23)), reference, atol=1e-5)

    query = torch.rand(1, 3, 17, 29)
    q = retriever.embed_image(query)
    neighbours = retriever.query_image(query)
    order = np.argsort(-(reference @ q), kind="stable")[:7]
    assert [n.id for n in neighbours] == [ids[i] for i in order]
    np.testing.assert_allclose([n.distance for n in neighbours], spherical_distance(reference[order], q), atol=1e-5)
    assert all(a.distance <= b.distance for a, b in itertools.pairwise(neighbours))
    assert [n.path for n in neighbours] == [str(by_id[n.id].resolve()) for n in neighbours]


def test_interrupted_build_resumes_to_the_same_index(tmp_path, tiny_clip, fast_embed, monkeypatch):
    write_collection(tmp_path / "col", 14)
    reference = build_index(tmp_path / "col", tmp_path / "once", tiny_clip, shard_size=3, embed=fast_embed)

    real_write = embedding.write_shard
    written: list[int] = []

    def crash_after_two(directory, index, shard):
        if len(written) == 2:
            raise RuntimeError("simulated crash")
        written.append(index)
        return real_write(directory, index, shard)

    monkeypatch.setattr(embedding, "write_shard", crash_after_two)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_index(tmp_path / "col", tmp_path / "resumed", tiny_clip, shard_size=3, embed=fast_embed)
    assert not (tmp_path / "resumed" / "meta.json").exists()
    assert sorted(p.name for p in (tmp_path / "resumed" / "shards").iterdir()) == [
        f"shard-{i:06d}.npz" for i in sorted(written)
    ]

    monkeypatch.setattr(embedding, "write_shard", real_write)
    embedded: list[int] = []
    real_embed = embedding.UnitBatches._unit_batches
    monkeypatch.setattr(
        embedding.UnitBatches, "_unit_batches", lambda self, unit: embedded.append(unit.index) or real_embed(self, unit)
    )
    resumed = build_index(tmp_path / "col", tmp_path / "resumed", tiny_clip, shard_size=3, embed=fast_embed)
    assert sorted(embedded) == sorted(set(range(5)) - set(written))  # finished shards are not embedded again
    assert resumed["count"] == reference["count"] == 14
    once, again = np.load(tmp_path / "once" / "embeddings.npy"), np.load(tmp_path / "resumed" / "embeddings.npy")
    np.testing.assert_array_equal(once, again)
    assert (tmp_path / "once" / "items.jsonl").read_text() == (tmp_path / "resumed" / "items.jsonl").read_text()


def test_rerun_of_a_finished_build_is_a_no_op(tmp_path, tiny_clip, fast_embed, monkeypatch):
    write_collection(tmp_path / "col", 4)
    first = build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, shard_size=2, embed=fast_embed)
    monkeypatch.setattr(build, "embed_units", lambda *a, **k: pytest.fail("re-embedded a finished build"))
    assert build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, shard_size=2, embed=fast_embed) == first


def test_corrupt_files_are_skipped_and_listed(tmp_path, tiny_clip, fast_embed):
    paths = write_collection(tmp_path / "col", 6)
    truncated = tmp_path / "col" / "a" / "truncated.png"
    truncated.write_bytes(paths[0].read_bytes()[:200])
    garbage = tmp_path / "col" / "b" / "garbage.jpg"
    garbage.write_bytes(b"\x00not an image" * 10)
    empty = tmp_path / "col" / "empty.png"
    empty.write_bytes(b"")

    meta = build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, shard_size=4, embed=fast_embed)
    assert meta["count"] == 6 and meta["skipped"] == 3
    listed = dict(line.split("\t", 1) for line in (tmp_path / "idx" / "skipped.tsv").read_text().splitlines())
    assert set(listed) == {str(p.resolve()) for p in (truncated, garbage, empty)}
    assert all(reason for reason in listed.values())
    items = [json.loads(line)["id"] for line in (tmp_path / "idx" / "items.jsonl").read_text().splitlines()]
    assert "a/truncated.png" not in items and len(items) == 6


def test_empty_and_unreadable_collections_are_clear_errors(tmp_path, tiny_clip, fast_embed):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty collection"):
        build_index(tmp_path / "empty", tmp_path / "idx1", tiny_clip, embed=fast_embed)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"broken")
    with pytest.raises(EmptyCollectionError, match="no readable image"):
        build_index(tmp_path / "bad", tmp_path / "idx2", tiny_clip, embed=fast_embed)


def test_k_larger_than_the_collection_is_a_clear_error(tmp_path, tiny_clip, fast_embed):
    write_collection(tmp_path / "col", 3)
    build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, embed=fast_embed)
    retriever = Retriever(tmp_path / "idx", tiny_clip)
    with pytest.raises(ValueError, match="k=20 but the collection .* holds 3 images"):
        retriever.query_image(torch.rand(1, 3, 32, 32))
    assert len(retriever.query_image(torch.rand(1, 3, 32, 32), k=3)) == 3


def test_encoder_mismatch_is_refused_at_query_and_resume(tmp_path, tiny_clip, tiny_clip_config, fast_embed):
    write_collection(tmp_path / "col", 3)
    build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, embed=fast_embed)
    other = OpenClipEncoder("tiny-clip", pretrained=None, model_config=str(tiny_clip_config), random_init=True, seed=7)
    with pytest.raises(EncoderMismatchError, match="built with encoder"):
        Retriever(tmp_path / "idx", other)
    with pytest.raises(ManifestMismatchError, match="encoder"):
        build_index(tmp_path / "col", tmp_path / "idx", other, embed=fast_embed)
    meta = build_index(tmp_path / "col", tmp_path / "idx", other, embed=fast_embed, overwrite=True)
    assert meta["encoder"] == other.name


def test_changed_collection_is_refused_on_resume(tmp_path, tiny_clip, fast_embed):
    write_collection(tmp_path / "col", 3)
    build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, embed=fast_embed)
    write_collection(tmp_path / "col" / "new", 1, seed=5)
    with pytest.raises(ManifestMismatchError, match="listing_sha256"):
        build_index(tmp_path / "col", tmp_path / "idx", tiny_clip, embed=fast_embed)
