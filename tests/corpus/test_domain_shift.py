"""The domain-shift sets on synthetic images, per-file credits, and the committed record of the real build."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adir_exp.corpus.domain_shift import (
    DOMAINS,
    NATURAL_FRACTIONS,
    RESERVE,
    SHIFTED_FRACTIONS,
    astronomy_groups,
    build_domain_shift,
    document_group,
    group_split,
    groups_crossing,
    natural_group,
    read_domain_manifest,
    series_of,
    split_counts,
    stellarium_credits,
)
from adir_exp.corpus.pages import page_digest
from adir_exp.corpus.photos import (
    MANIFEST_NAME,
    PINNED_SPLITS,
    Candidate,
    build_corpus,
    folder_candidates,
    parse_readme_credits,
    sha256_file,
    split_of,
)
from tests.conftest import REPO_ROOT

RECORD = REPO_ROOT / "experiments" / "domain_shift" / MANIFEST_NAME


def _images(folder: Path, count: int, seed: int, size: tuple[int, int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


@pytest.fixture()
def sets(tmp_path: Path) -> dict:
    _images(tmp_path / "natural", 20, 0, (120, 90))
    _images(tmp_path / "astronomy", 20, 1, (500, 450))
    _images(tmp_path / "pages", 12, 2, (150, 200))
    natural = [replace(c, source=f"test:natural{i % 5}")  # five packages: five source groups
               for i, c in enumerate(folder_candidates(tmp_path / "natural", "test:natural", "1", "CC0-1.0", "x"))]
    astronomy = folder_candidates(tmp_path / "astronomy", "test:sky", "1", "GPL-2+", "an observatory")
    pages = [
        Candidate(c.name, "test:pdf", "1", f"manual{i % 4}.pdf#page={i + 1}", "GPL-2", "R Core Team", c.path,
                  page_digest("ab" * 32, i + 1))
        for i, c in enumerate(folder_candidates(tmp_path / "pages", "test:pdf", "1", "", ""))
    ]
    return {"natural": natural, "astronomy": astronomy, "documents": pages}


def _build(sets: dict, root: Path, reverse: bool = False, balance: bool = True) -> tuple[list, list]:
    order = (lambda xs: list(reversed(xs))) if reverse else list
    corpus = build_corpus(order(sets["natural"]), root / "corpus", root / "bundle", train_short_side=64,
                          bundle_short_side=32)
    shifted = {"astronomy": order(sets["astronomy"]), "documents": order(sets["documents"])}
    return corpus, build_domain_shift(corpus, root / "corpus", shifted, root / "study", balance=balance)


def test_splits_are_drawn_per_source_group_and_natural_training_photos_stay_train(sets, tmp_path):
    corpus, study = _build(sets, tmp_path, balance=False)
    trained = {e.sha256 for e in corpus if e.split == "train"}
    for entry in study:
        if entry.domain == "natural":
            assert entry.group == natural_group(entry.source, entry.copyright)
            expected = "train" if entry.sha256 in trained else group_split(entry.group, NATURAL_FRACTIONS)
        else:
            assert entry.split in ("collection", "test")
            expected = group_split(entry.group, SHIFTED_FRACTIONS)
        assert entry.split == expected, entry
    assert all(e.group == document_group(e.file) for e in study if e.domain == "documents")
    assert len({e.group for e in study if e.domain == "documents"}) == 4
    counts = split_counts(study)
    assert counts["astronomy"]["train"] == counts["documents"]["train"] == 0
    assert sum(counts[d][s] for d in DOMAINS for s in counts[d]) == len(study) == 52
    assert groups_crossing(study) == {}


def test_mosaic_pieces_and_one_published_picture_form_one_group():
    names = {
        "lmc_01": ("lmc_01", "ESO (https://eso.org/public/images/eso1311c/)"),
        "lmc_16": ("lmc_16", "ESO (https://eso.org/public/images/eso1311c/)"),
        "rho-a00": ("rho-a00", "R. B. Andreo"), "rho-a11": ("rho-a11", "R. B. Andreo"),
        "ic2118-1": ("ic2118-1", "Zhao"), "ic2118-2": ("ic2118-2", "Zhao"),
        "m59": ("m59", "DSS2 (https://www.eso.org/public/images/eso0919c/)"),
        "m89": ("m89", "DSS2 (https://www.eso.org/public/images/eso0919c/)"),
        "m31": ("m31", "Plover Hill (http://www.madpc.co.uk/~peterv/)"),  # a home page links nothing specific
        "m33": ("m33", "Plover Hill (http://www.madpc.co.uk/~peterv/)"),
        "n2244": ("n2244", "x"), "barnard142": ("barnard142", "y"),
    }
    groups = astronomy_groups(names)
    assert groups["lmc_01"] == groups["lmc_16"] == "astronomy:lmc"
    assert groups["rho-a00"] == groups["rho-a11"] == "astronomy:rho"
    assert groups["ic2118-1"] == groups["ic2118-2"]
    assert groups["m59"] == groups["m89"] == "astronomy:m59"
    assert len({groups["m31"], groups["m33"], groups["n2244"], groups["barnard142"], groups["lmc_01"]}) == 5
    assert [series_of(n) for n in ("sh2-1-1", "sh2-132", "n4038-9", "smc-ha")] == ["sh2-1", "sh2-132", "n4038", "smc-ha"]


def test_no_group_crosses_the_split_even_where_a_hash_per_image_would(sets, tmp_path):
    pieces = [Candidate(f"mosaic_{i:02d}", "test:sky", "1", f"mosaic_{i:02d}.png", "GPL-2+", "a photographer",
                        sets["astronomy"][i].path) for i in range(12)]
    assert {split_of(sha256_file(c.path), SHIFTED_FRACTIONS) for c in pieces} == {"retrieval", "test"}  # per image
    sets["astronomy"] = pieces + sets["astronomy"][12:]
    _, study = _build(sets, tmp_path, balance=False)
    mosaic = {e.split for e in study if e.group == "astronomy:mosaic"}
    assert len(mosaic) == 1 and groups_crossing(study) == {}


def test_the_balanced_collection_holds_as_many_images_of_each_domain(sets, tmp_path):
    _, study = _build(sets, tmp_path)
    counts = split_counts(study)
    sizes = {counts[d]["collection"] for d in DOMAINS}
    assert len(sizes) == 1 and sizes.pop() > 0, counts
    assert all(not (tmp_path / "study" / e.path).is_file() or e.path == "" for e in study if e.split == RESERVE)
    assert all(e.path == "" for e in study if e.split == RESERVE)


def test_files_live_where_the_manifest_says_and_keep_their_scale(sets, tmp_path):
    _, study = _build(sets, tmp_path)
    root = tmp_path / "study"
    assert read_domain_manifest(root / MANIFEST_NAME) == study
    payload = json.loads((root / MANIFEST_NAME).read_text())
    assert payload["counts"] == split_counts(study) and "split_rule" in payload and "pages" in payload
    for entry in study:
        if entry.split == RESERVE:
            assert entry.path == ""
            continue
        path = root / entry.path
        assert path.is_file(), entry
        if entry.split == "train":
            assert path.resolve().parent == (tmp_path / "corpus" / "train").resolve()
            continue
        assert entry.path == (f"collection/{entry.domain}/{entry.id}.png" if entry.split == "collection"
                              else f"test/{entry.domain}/{entry.id}.png")
        with Image.open(path) as image:
            if entry.domain == "documents":  # pages keep their rendering's scale
                assert image.size == (entry.width, entry.height)
            else:  # natural: the corpus copy (64 px here); astronomy: 384 px
                short = 64 if entry.domain == "natural" else 384
                assert min(image.size) == min(short, entry.width, entry.height)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
    assert on_disk == {e.path for e in study if e.split not in ("train", RESERVE)}


def test_build_is_deterministic_and_drops_stale_files(sets, tmp_path):
    _, first = _build(sets, tmp_path / "a")
    stale = tmp_path / "b" / "study" / "test" / "astronomy" / "old-00000000.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    _, second = _build(sets, tmp_path / "b", reverse=True)
    assert [(e.id, e.split, e.path) for e in first] == [(e.id, e.split, e.path) for e in second]
    assert not stale.exists()
    for entry in first:
        if entry.split not in ("train", RESERVE):
            a = (tmp_path / "a" / "study" / entry.path).read_bytes()
            assert a == (tmp_path / "b" / "study" / entry.path).read_bytes()


def test_exact_duplicates_across_domains_are_kept_once(sets, tmp_path):
    copy = tmp_path / "copy.png"
    copy.write_bytes(sets["natural"][0].path.read_bytes())
    sets["astronomy"].append(Candidate("copy", "test:sky", "1", "copy.png", "GPL-2+", "x", copy))
    _, study = _build(sets, tmp_path)
    assert len(study) == 52 and not any(e.file == "copy.png" for e in study)
    with pytest.raises(ValueError, match="unknown shifted domains"):
        build_domain_shift([], tmp_path, {"paintings": []}, tmp_path / "x")


def test_per_file_credits():
    readme = (
        "Copyright: Timothée Giet, 2022\nLicense: CC-BY-SA 4.0\nFiles:\nsquare.svg\nother.svg\n\n"
        "Copyright: aussiegall\nSource: https://commons.wikimedia.org/wiki/File:Pollinationn.jpg\n"
        "License: CC-BY-2.0\nComments: cropping, sharpening\nFiles: bee.webp\n"
    )
    credits = parse_readme_credits(readme)
    assert credits["other.svg"] == ("CC-BY-SA 4.0", "Timothée Giet, 2022")
    source = "https://commons.wikimedia.org/wiki/File:Pollinationn.jpg"
    assert credits["bee.webp"] == ("CC-BY-2.0", f"aussiegall; {source}; comment: cropping, sharpening")


def test_stellarium_credits_read_its_lenient_json(tmp_path):
    folder = tmp_path / "usr/share/stellarium/nebulae/default"
    folder.mkdir(parents=True)
    (folder / "textures.json").write_text(
        '{"subTiles": [\n'
        '{"imageCredits": {"short": "ESO"}, "imageUrl": "m1.png", "worldCoords": [[[83.6, -.97]]]},\n'
        '{"imageCredits": {"Short": "Starhopper", "infoUrl": "https://x/M2"}, "imageUrl": "m2.png",'
        ' "worldCoords": [[[1,.5]]]}\n]}'
    )
    member = "usr/share/stellarium/nebulae/default/{}.png"
    assert stellarium_credits(tmp_path, member.format("m1")) == (None, "ESO")
    assert stellarium_credits(tmp_path, member.format("m2")) == (None, "Starhopper (https://x/M2)")
    assert stellarium_credits(tmp_path, member.format("m3")) is None


def test_committed_record_of_the_real_build():
    """experiments/domain_shift/manifest.json: the sizes the study needs, source groups on one side only, a
    balanced collection, the prior's training photos where the corpus put them."""
    payload = json.loads(RECORD.read_text(encoding="utf-8"))
    entries = read_domain_manifest(RECORD)
    counts = split_counts(entries)
    assert payload["counts"] == counts
    assert groups_crossing(entries) == {}
    assert len({counts[d]["collection"] for d in DOMAINS}) == 1 and counts["natural"]["collection"] >= 30, counts
    assert all(counts[d]["test"] >= 30 for d in DOMAINS), counts
    assert counts["astronomy"]["train"] == counts["documents"]["train"] == 0
    assert len({e.sha256 for e in entries}) == len({e.id for e in entries}) == len(entries)
    for entry in entries:
        assert entry.licence and entry.copyright and entry.version and entry.file and len(entry.sha256) == 64
        assert entry.source.startswith(("debian:", "pypi:")) and entry.width > 0 and entry.height > 0
        assert ("#page=" in entry.file) == (entry.domain == "documents")
        if entry.domain == "natural":
            assert entry.group == natural_group(entry.source, entry.copyright)
            trained = (PINNED_SPLITS.get((entry.source, entry.file)) or split_of(entry.sha256)) == "train"
            assert (entry.split == "train") == trained, entry
            if not trained and entry.split != RESERVE:
                assert entry.split == group_split(entry.group, NATURAL_FRACTIONS)
        elif entry.split != RESERVE:
            assert entry.split == group_split(entry.group, SHIFTED_FRACTIONS)
        if entry.domain == "documents":
            assert entry.group == document_group(entry.file)
