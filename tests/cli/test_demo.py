"""`make run` (experiment=demo): the bundled shifted-domain case. The experiment composes to its four rows on the
bundled astronomy image; the bundled bank was fitted for the bundled index, the embedded prior and the demo's LoRA
settings (opened and checked, nothing fitted); every bundled image has its licence and credits, no collection image
shares a test image's source group, and the bundle stays small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from adir_exp.bank import AdapterBank
from adir_exp.bank.store import weights_digest
from adir_exp.data.images import IMAGE_SUFFIXES
from adir_exp.paths import ASSETS_DIR
from tests.cli.helpers import compose_app

BUNDLE = ASSETS_DIR / "astronomy"
MANIFEST = json.loads((BUNDLE / "manifest.json").read_text())
CREDITS = ("source", "version", "file", "licence", "copyright", "sha256", "group")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return compose_app("bench", ["experiment=demo"], tmp_path_factory.mktemp("demo"))


def test_the_demo_reconstructs_a_bundled_astronomy_image_with_four_rows(demo) -> None:
    assert list(demo.methods) == ["bicubic", "gd", "adir_knn", "adir_bank"]
    assert Path(demo.retrieval.index_dir) == BUNDLE / "index" and Path(demo.bank.dir) == BUNDLE / "bank"
    (image,) = demo.benchmark.include
    tests = {Path(e["path"]).stem: e for e in MANIFEST["images"] if e["split"] == "test"}
    assert tests[image]["domain"] == "astronomy" and (Path(demo.benchmark.dataset) / f"{image}.png").is_file()


def test_the_bundled_bank_was_fitted_for_the_bundled_index_the_embedded_prior_and_the_demo_settings(demo) -> None:
    bank = AdapterBank(demo.bank.dir)
    prior = instantiate(demo.model)
    retriever = instantiate(demo.retrieval)
    # refused after the embedded prior is retrained: refit with `make demo-bank`
    bank.check(prior.fingerprint(), retriever.encoder.name, retriever.index.fingerprint())
    identity = bank.identity
    assert identity["adaptation"] == instantiate(demo.adaptation).settings()
    assert (identity["num_neighbourhoods"], identity["seed"]) == (demo.bank.num_neighbourhoods, demo.bank.seed)
    for n, entry in enumerate(bank.manifest["neighbourhoods"]):
        assert weights_digest(bank.adapter(n)) == entry["weights_sha256"]


def test_every_bundled_image_has_its_licence_and_credits_and_the_index_covers_the_collection() -> None:
    listed = {(BUNDLE / e["path"]).resolve(): e for e in MANIFEST["images"]}
    files = {p.resolve() for p in BUNDLE.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    assert files <= set(listed) and all(path.is_file() for path in listed)
    for entry in listed.values():
        assert all(entry.get(key) for key in CREDITS), entry["id"]
        assert len(entry["sha256"]) == 64
    collection = (BUNDLE / "collection.txt").read_text().split()
    assert sorted(collection) == sorted(e["path"] for e in MANIFEST["images"] if e["split"] == "collection")
    items = [json.loads(line) for line in (BUNDLE / "index" / "items.jsonl").read_text().splitlines()]
    assert [item["id"] for item in items] == collection
    assert all((BUNDLE / "index" / item["path"]).resolve() == (BUNDLE / item["id"]).resolve() for item in items)


def test_no_collection_image_shares_a_test_images_source_group() -> None:
    groups = {split: {e["group"] for e in MANIFEST["images"] if e["split"] == split} for split in ("test", "collection")}
    assert groups["test"] and groups["collection"] and not groups["test"] & groups["collection"]
    domains = {e["domain"] for e in MANIFEST["images"] if e["split"] == "collection"}
    assert domains == {"astronomy", "natural"} and len(domains) == AdapterBank(BUNDLE / "bank").identity[
        "num_neighbourhoods"]


def test_the_bundle_stays_small() -> None:
    # the two rank-16 fp32 adapters of the bank are 3.4 MB of it; images (short side 192) and index about 1 MB
    assert sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file()) < 5e6
