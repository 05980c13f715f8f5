"""Corpus assembly on a synthetic folder (no Debian downloads) and the shipped corpus' invariants."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.corpus.photos import (
    MANIFEST_NAME,
    SPLITS,
    Candidate,
    build_corpus,
    folder_candidates,
    parse_copyright,
    read_manifest,
    sha256_file,
    split_of,
    stanza_for,
)
from adir_exp.paths import ASSETS_DIR

BUNDLE = ASSETS_DIR / "corpus"


def _write_photos(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        h, w = int(rng.integers(70, 140)), int(rng.integers(70, 140))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")


@pytest.fixture()
def photos(tmp_path: Path) -> list[Candidate]:
    _write_photos(tmp_path / "src", 30)
    return folder_candidates(tmp_path / "src", "synthetic", "1", "CC0-1.0", "the test suite")


def _build(candidates: list[Candidate], root: Path, **kwargs) -> list:
    return build_corpus(candidates, root / "cache", root / "bundle", train_short_side=96, bundle_short_side=64,
                        **kwargs)


def test_splits_are_disjoint_and_files_live_where_the_manifest_says(photos, tmp_path):
    entries = _build(photos, tmp_path / "out")
    by_hash: dict[str, set[str]] = {}
    for entry in entries:
        by_hash.setdefault(entry.sha256, set()).add(entry.split)
    assert all(len(splits) == 1 for splits in by_hash.values())
    assert len({e.id for e in entries}) == len(entries)
    counts = Counter(e.split for e in entries)
    assert all(counts[s] > 0 for s in SPLITS), counts  # 30 images at 70/15/15: every split is populated
    cache, bundle = tmp_path / "out" / "cache", tmp_path / "out" / "bundle"
    for entry in entries:  # the cache holds every split, the bundle the retrieval and test images
        assert (cache / entry.path).is_file()
        assert (bundle / entry.path).is_file() == (entry.split != "train")
        assert entry.path.startswith(f"{entry.split}/")
    assert not (bundle / "train").exists()


def test_manifest_is_complete(photos, tmp_path):
    entries = _build(photos, tmp_path / "out")
    assert sorted(e.file for e in entries) == sorted(c.file for c in photos)
    for entry, candidate in zip(sorted(entries, key=lambda e: e.file), sorted(photos, key=lambda c: c.file)):
        assert entry.sha256 == sha256_file(candidate.path)
        assert (entry.source, entry.version, entry.licence, entry.copyright) == ("synthetic", "1", "CC0-1.0", "the test suite")
        with Image.open(candidate.path) as original:
            assert (entry.width, entry.height) == original.size
    for root in ("cache", "bundle"):
        assert read_manifest(tmp_path / "out" / root / MANIFEST_NAME) == entries


def test_build_is_deterministic(photos, tmp_path):
    first = _build(photos, tmp_path / "a")
    second = _build(list(reversed(photos)), tmp_path / "b")
    assert first == second
    for entry in first:
        root = "cache" if entry.split == "train" else "bundle"
        a = (tmp_path / "a" / root / entry.path).read_bytes()
        assert a == (tmp_path / "b" / root / entry.path).read_bytes()


def test_resizing_sets_the_short_side(photos, tmp_path):
    for entry in _build(photos, tmp_path / "out"):
        with Image.open(tmp_path / "out" / "cache" / entry.path) as image:
            assert min(image.size) == min(96, entry.width, entry.height)
        if entry.split != "train":
            with Image.open(tmp_path / "out" / "bundle" / entry.path) as image:
                assert min(image.size) == min(64, entry.width, entry.height)


def test_duplicates_are_kept_once_and_pins_override_the_hash(photos, tmp_path):
    copy = tmp_path / "copy.png"
    copy.write_bytes(photos[0].path.read_bytes())
    duplicate = Candidate("copy", "zzz-other", "2", "copy.png", "CC0-1.0", "someone", copy)
    pinned = {(photos[1].source, photos[1].file): "test"}
    entries = _build([*photos, duplicate], tmp_path / "out", pinned=pinned)
    assert len(entries) == len(photos)
    assert next(e for e in entries if e.file == photos[1].file).split == "test"


def test_added_sources_leave_the_bundle_as_it_was(photos, tmp_path):
    alone = _build(photos, tmp_path / "a")
    _write_photos(tmp_path / "more", 12)  # same generator: the first files duplicate bundled photos
    rng = np.random.default_rng(1)
    for i in range(12, 20):
        Image.fromarray(rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)).save(tmp_path / "more" / f"x{i}.png")
    added = folder_candidates(tmp_path / "more", "added", "2", "CC-BY-4.0", "someone else")
    both = _build([*added, *photos], tmp_path / "b", bundle_sources={"synthetic"})
    bundle_a, bundle_b = tmp_path / "a" / "bundle", tmp_path / "b" / "bundle"
    assert (bundle_a / MANIFEST_NAME).read_bytes() == (bundle_b / MANIFEST_NAME).read_bytes()
    assert sorted(p.relative_to(bundle_b) for p in bundle_b.rglob("*.png")) == sorted(
        p.relative_to(bundle_a) for p in bundle_a.rglob("*.png"))
    assert both == read_manifest(tmp_path / "b" / "cache" / MANIFEST_NAME)
    assert len(both) == len(alone) + 8  # duplicates stay under the bundled source
    for entry in both:  # the cache holds every split of every source
        assert (tmp_path / "b" / "cache" / entry.path).is_file()


def test_split_of_follows_the_fractions():
    hashes = [f"{i:016x}" + "0" * 48 for i in range(0, 1 << 64, 1 << 58)]
    assert {split_of(h, (1.0, 0.0, 0.0)) for h in hashes} == {"train"}
    counts = Counter(split_of(h, (0.5, 0.25, 0.25)) for h in hashes)
    assert counts == {"train": 32, "retrieval": 16, "test": 16}
    with pytest.raises(ValueError):
        split_of(hashes[0], (0.5, 0.5))


def test_dep5_licence_lookup_last_match_wins():
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
        "Files: nature/Aqua.jpg\n       nature/Dune.jpg\nCopyright: 2008, A\n           2009, B\n"
        "License: CC-BY-SA-3.0\n text\n\n"
        "License: GPL-2+\n long text\n"
    )
    stanzas = parse_copyright(text)
    assert [(s.patterns, s.licence, s.holders) for s in stanzas] == [
        (("*",), "GPL-2+", "someone"),
        (("nature/Aqua.jpg", "nature/Dune.jpg"), "CC-BY-SA-3.0", "2008, A; 2009, B"),
    ]
    assert stanza_for("usr/share/backgrounds/mate/nature/Dune.jpg", stanzas) == stanzas[1]
    assert stanza_for("usr/share/backgrounds/mate/abstract/Flow.png", stanzas) == stanzas[0]
    assert stanza_for("anything", stanzas[1:]) is None
    # installed elsewhere than in the source tree: the file name decides, unless a path pattern matches
    moved = parse_copyright("Files: 16.04/Bridge.jpg\nLicense: CC-BY-SA-4.0\n\nFiles: *\nLicense: Expat\n")
    assert stanza_for("usr/share/backgrounds/Bridge.jpg", moved).licence == "Expat"
    assert stanza_for("usr/share/backgrounds/Bridge.jpg", moved[:1]).licence == "CC-BY-SA-4.0"
    # a free-form copyright file (r-doc-pdf, kphotoalbum) has no Files paragraphs, and must not trip the parser
    assert parse_copyright("License:\n    GPL\nsrc/appl/interv.c :\n    Copyright (C) 1995\n") == []


def test_shipped_corpus_is_split_cleanly_and_small():
    manifest = json.loads((BUNDLE / MANIFEST_NAME).read_text())
    entries = read_manifest(BUNDLE / MANIFEST_NAME)
    assert len({e.sha256 for e in entries}) == len(entries)
    for entry in entries:
        assert entry.licence and entry.copyright and entry.version and entry.source and len(entry.sha256) == 64
        if entry.split != "train":
            assert (BUNDLE / entry.path).is_file()
            with Image.open(BUNDLE / entry.path) as image:
                assert min(image.size) == min(256, entry.width, entry.height)
        pinned = {(p["source"], p["file"]): p["split"] for p in manifest["pinned"]}
        expected = pinned.get((entry.source, entry.file)) or split_of(entry.sha256, list(manifest["splits"].values()))
        assert entry.split == expected
    # the framework's default run image (skimage astronaut) is held out, never trained on or retrieved
    astronaut = [e for e in entries if e.file.endswith("astronaut.png")]
    assert [e.split for e in astronaut] == ["test"]
    bundled = [p for p in BUNDLE.rglob("*") if p.is_file()]
    assert {p.relative_to(BUNDLE).as_posix() for p in bundled} == {MANIFEST_NAME} | {
        e.path for e in entries if e.split != "train"
    }
    assert sum(p.stat().st_size for p in bundled) < 15e6
