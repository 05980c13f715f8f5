import csv

import pytest
import torch.nn.functional as F
from PIL import Image
from retrieval_helpers import to_tensor

from adir_exp.retrieval.query import Retriever
from adir_exp.retrieval.robustness import OverlapRow, neighbour_overlap, plot, write_csv


@pytest.fixture(scope="module")
def retriever(photo_index, effnet_128):
    return Retriever(photo_index / "index", effnet_128)


@pytest.fixture(scope="module")
def photos(photo_index):
    return [to_tensor(Image.open(photo_index / "collection" / f"{n}.png")) for n in ("chelsea", "coffee", "rocket")]


def test_identity_degradation_keeps_every_neighbour(retriever, photos):
    rows = neighbour_overlap(retriever, photos, {"identity": lambda x: x}, ks=(1, 3, 8))
    assert [(r.degradation, r.k, r.recall_mean, r.n_images) for r in rows] == [
        ("identity", 1, 1.0, 3),
        ("identity", 3, 1.0, 3),
        ("identity", 8, 1.0, 3),
    ]


def test_overlap_falls_with_stronger_degradation(retriever, photos):
    degradations = {"sr2": lambda x: F.avg_pool2d(x, 2), "sr16": lambda x: F.avg_pool2d(x, 16)}
    rows = {(r.degradation, r.k): r for r in neighbour_overlap(retriever, photos, degradations, ks=(3, 9))}
    assert all(0.0 <= r.recall_mean <= 1.0 for r in rows.values())
    assert rows["sr2", 3].recall_mean >= rows["sr16", 3].recall_mean
    assert rows["sr2", 9].recall_mean == 1.0  # K = the whole guarded collection: every set is the same


def test_guard_keeps_the_image_itself_out_of_both_sets(retriever, photos, monkeypatch):
    """Without the guard, x's copy is first for x and for mild A(x), which inflates recall@1."""
    mild = {"sr2": lambda x: F.avg_pool2d(x, 2)}
    unguarded = neighbour_overlap(retriever, photos, mild, ks=(1,), guard=False)[0]
    assert unguarded.recall_mean == 1.0

    results = []
    query = retriever.query_embedding
    monkeypatch.setattr(retriever, "query_embedding", lambda *a: results.append(query(*a)) or results[-1])
    neighbour_overlap(retriever, photos, mild, ks=(1,))
    assert len(results) == 6 and all(len(r.excluded) == 1 for r in results)  # x's copy, from both queries
    assert all(r.excluded[0].id not in [n.id for n in r] for r in results)
    assert [r.excluded[0].id for r in results] == ["chelsea.png"] * 2 + ["coffee.png"] * 2 + ["rocket.png"] * 2


def test_csv_and_plot_are_written(tmp_path):
    rows = [OverlapRow("sr4", k, 1 / k, 0.1, 5) for k in (1, 5, 10)] + [OverlapRow("blur", 5, 0.7, 0.0, 5)]
    with open(write_csv(rows, tmp_path / "out" / "robustness.csv")) as handle:
        table = list(csv.DictReader(handle))
    assert table[1] == {"degradation": "sr4", "k": "5", "recall_mean": "0.2", "recall_std": "0.1", "n_images": "5"}
    png = plot(rows, tmp_path / "out" / "robustness.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_needs_a_degradation(retriever, photos):
    with pytest.raises(ValueError, match="no degradation"):
        neighbour_overlap(retriever, photos, {})
