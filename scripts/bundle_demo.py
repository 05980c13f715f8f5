"""Bundle the shifted-domain case that `make run` (experiment=demo) reconstructs: astronomy photographs the
embedded prior (natural photos only) has never seen, a small collection that mixes them with natural photos, and
its retrieval index, into src/adir_exp/assets/astronomy/ (the adapter bank is then `make demo-bank`).

Needs the domain-shift study's data (`adir-make-data --domains`, $ADIR_HOME/domain_shift). Every choice is a fixed
rule on names and pixel spread, made before any reconstruction (``RULES``, also written into the manifest).

Images are stored at short side 192 (Lanczos; the demo adapts at short side 128). The manifest keeps the study's
fields (source package and version, file, licence, copyright, sha256 of the original, group) with paths relative to
it, so the leakage guard reads its groups. The index is built with `adir-index build` and stored with item paths
relative to the index folder, so its fingerprint (ids and embeddings) is the same on every machine and the bank
fitted on it matches wherever the package is installed.

    .venv/bin/python scripts/bundle_demo.py        # then: make demo-bank
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from adir_exp.evaluation.benchmark_images import prepare
from adir_exp.paths import ASSETS_DIR, adir_home

OUT = ASSETS_DIR / "astronomy"
NATURAL = ASSETS_DIR / "corpus"
TEST_COUNT = 3
COLLECTION_COUNT = 13
SHORT_SIDE = 192
DEMO_SIZE = 128
MIN_STD = 0.02
INDEX_FILES = ("meta.json", "embeddings.npy", "items.jsonl")
RULES = {
    "test": f"the first {TEST_COUNT} astronomy images of the study's test split by id, one per source group, whose "
            f"{DEMO_SIZE}-px resize_crop (what the demo reconstructs) has a pixel standard deviation >= {MIN_STD} "
            "(the study's rule for flat tiles); the demo runs the first",
    "collection": f"the first image (by id) of each of the first {COLLECTION_COUNT} source groups (by name) of the "
                  "study's astronomy collection split, plus the natural photos bundled in assets/corpus/retrieval "
                  "(listed, not copied); test and collection groups are disjoint by the study's split",
}


def save_resized(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        scale = SHORT_SIDE / min(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, optimize=True)


def first_per_group(entries: list[dict]) -> list[dict]:
    """The first entry (by id) of each source group, groups by name."""
    chosen: dict[str, dict] = {}
    for entry in sorted(entries, key=lambda e: e["id"]):
        chosen.setdefault(entry["group"], entry)
    return [chosen[group] for group in sorted(chosen)]


def bundle_images(study: Path) -> list[dict]:
    """Write the test and collection images; return their manifest entries (natural ones included)."""
    images = json.loads((study / "manifest.json").read_text())["images"]
    astronomy = [e for e in images if e["domain"] == "astronomy"]
    entries = []
    groups: set[str] = set()
    for entry in sorted((e for e in astronomy if e["split"] == "test"), key=lambda e: e["id"]):
        if len(groups) == TEST_COUNT:
            break
        if entry["group"] in groups:
            continue
        target = OUT / "test" / f"{entry['id']}.png"
        save_resized(study / entry["path"], target)
        if float(prepare(target, DEMO_SIZE, "resize_crop").std()) < MIN_STD:
            target.unlink()
            continue
        groups.add(entry["group"])
        entries.append(entry | {"path": target.relative_to(OUT).as_posix()})
    collection = first_per_group([e for e in astronomy if e["split"] == "collection"])[:COLLECTION_COUNT]
    for entry in collection:
        target = OUT / "collection" / f"{entry['id']}.png"
        save_resized(study / entry["path"], target)
        entries.append(entry | {"path": target.relative_to(OUT).as_posix()})
    by_digest = {e["sha256"]: e for e in images}
    for photo in json.loads((NATURAL / "manifest.json").read_text())["images"]:
        if photo["split"] == "retrieval":
            path = Path(os.path.relpath(NATURAL / photo["path"], OUT)).as_posix()
            entries.append(photo | {"split": "collection", "domain": "natural", "path": path,
                                    "group": by_digest[photo["sha256"]]["group"]})
    return entries


def build_index(collection_list: Path) -> None:
    """`adir-index build` into a scratch folder, then the index files with item paths relative to the index."""
    target = OUT / "index"
    with tempfile.TemporaryDirectory() as scratch:
        command = [str(Path(sys.executable).with_name("adir-index")), "build", str(collection_list), "-o", scratch]
        subprocess.run(command, check=True)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in INDEX_FILES:
            shutil.copyfile(Path(scratch) / name, target / name)
    items = [json.loads(line) for line in (target / "items.jsonl").read_text().splitlines()]
    (target / "items.jsonl").write_text("".join(
        json.dumps({"id": item["id"], "path": Path(os.path.relpath(item["path"], target)).as_posix()}) + "\n"
        for item in items))
    meta = json.loads((target / "meta.json").read_text())
    meta["source"] = Path(os.path.relpath(collection_list, target)).as_posix()
    (target / "meta.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    study = adir_home() / "domain_shift"
    if not (study / "manifest.json").is_file():
        sys.exit(f"no domain-shift data at {study} (manifest.json missing): run `adir-make-data --domains` first")
    for folder in ("test", "collection", "index"):
        shutil.rmtree(OUT / folder, ignore_errors=True)
    entries = bundle_images(study)
    collection = [e["path"] for e in entries if e["split"] == "collection"]
    collection_list = OUT / "collection.txt"
    collection_list.write_text("".join(f"{path}\n" for path in collection))
    manifest = {
        "paths": "relative to this file's directory",
        "origin": "the domain-shift study's manifest (adir-make-data --domains) and assets/corpus/manifest.json",
        "rules": RULES,
        "short_side": SHORT_SIDE,
        "images": entries,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    build_index(collection_list)
    print(f"bundled {sum(e['split'] == 'test' for e in entries)} test and {len(collection)} collection images "
          f"and their index into {OUT}; now refit the bank: make demo-bank")


if __name__ == "__main__":
    main()
