"""The domain-shift study's images: natural photos, astronomy photographs and typeset pages, split by hash.

Test-time adaptation should matter most where the prior knows least. The prior is trained on natural photos
only (the corpus' train split); the study reconstructs held-out images of three domains and draws adaptation
images from one retrieval collection that mixes them. Splits, all from the image's SHA-256 (its first 64 bits
as a number in [0, 1) against cumulative fractions, as :func:`~adir_exp.prior.corpus.split_of`):

- natural: the corpus' own split, train 0.70 / collection 0.15 / test 0.15 (the corpus calls the collection
  "retrieval"), so every photo keeps the split the prior and the bundled corpus already use;
- astronomy and documents: collection 0.70 / test 0.30; never train. A PDF page's hash is that of
  ``"<SHA-256 of the PDF>#page=<N>"`` (:func:`~adir_exp.prior.pages.page_digest`).

Exact duplicates are kept once across all domains (natural first). Natural and astronomy images are stored with
short side 384 px, pages at 150 dpi.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from PIL import Image

from adir_exp.prior import pages
from adir_exp.prior.corpus import (
    DEFAULT_FRACTIONS,
    MANIFEST_NAME,
    Candidate,
    DebianSource,
    ManifestEntry,
    image_id_for,
    resized,
    sha256_file,
    split_of,
)

DOMAINS = ("natural", "astronomy", "documents")
SHIFTED_DOMAINS = DOMAINS[1:]
SPLITS = ("train", "collection", "test")
SHIFTED_FRACTIONS = (0.0, 0.7, 0.3)  # train / collection / test for a shifted domain: never train
CORPUS_TO_STUDY = {"train": "train", "retrieval": "collection", "test": "test"}
SHORT_SIDE: dict[str, int | None] = {"natural": 384, "astronomy": 384, "documents": None}  # None: as rendered


@cache
def _stellarium_table(folder: Path) -> dict[str, str]:
    """imageUrl → credit line, from the ``textures.json`` Stellarium keeps beside its nebula images."""
    text = (folder / "textures.json").read_text()
    # Stellarium writes numbers such as -.9794, which strict JSON rejects.
    data = json.loads(re.sub(r"([\[,:\s])(-?)\.(\d)", r"\g<1>\g<2>0.\3", text))
    table = {}
    for tile in data["subTiles"]:
        credits = {key.lower(): value for key, value in tile.get("imageCredits", {}).items()}
        holder = credits.get("short", "")
        table[tile["imageUrl"]] = f"{holder} ({credits['infourl']})" if credits.get("infourl") else holder
    return table


def stellarium_credits(root: Path, member: str) -> tuple[str | None, str] | None:
    path = root / member
    holder = _stellarium_table(path.parent).get(path.name)
    return (None, holder) if holder else None


# Stellarium's default nebula textures: telescope photographs of nebulae, galaxies and clusters.
ASTRONOMY_SOURCE = DebianSource(
    "stellarium-data",
    ("usr/share/stellarium/nebulae/default/*.png",),
    each=True,
    min_short_side=512,
    credits=stellarium_credits,
)
# The R manuals; fullrefman.pdf is left out because it renders page for page like refman.pdf.
DOCUMENT_SOURCE = DebianSource(
    "r-doc-pdf",
    ("usr/share/R/doc/manual/R-*.pdf", "usr/share/R/doc/manual/refman.pdf"),
    each=True,
    licence=("GPL-2", "R Core Team"),  # r-doc-pdf's copyright file is not DEP-5; this is what it declares
)


@dataclass
class DomainEntry:
    id: str
    split: str  # train | collection | test
    domain: str  # natural | astronomy | documents
    source: str
    version: str
    file: str  # path inside the package; "<rcc>:/<entry>" inside a Qt resource file; "#page=N" for PDF pages
    licence: str
    copyright: str
    sha256: str
    width: int  # of the original (of the 150 dpi rendering for a page)
    height: int
    path: str  # relative to the manifest's directory


def study_path(domain: str, split: str, image_id: str) -> str:
    """Where an image of the study lives, relative to its directory (train images live in the corpus). The
    collection keeps one folder per domain, so a retrieved image's id (``<domain>/<name>.png``) says its domain:
    retrieval precision and the per-domain oracle read it from there."""
    return f"{split}/{domain}/{image_id}.png"


def build_domain_shift(
    natural: Sequence[ManifestEntry],
    corpus_dir: Path,
    shifted: Mapping[str, Sequence[Candidate]],
    out_dir: Path,
) -> list[DomainEntry]:
    """Write ``out_dir/collection/<domain>`` and ``out_dir/test/<domain>`` plus the manifest; returns its entries.

    ``natural`` is the corpus manifest (``build_corpus`` wrote its images into ``corpus_dir``), ``shifted`` maps
    ``astronomy`` / ``documents`` to their candidates. Files of an earlier build that are no longer chosen are
    removed from ``collection`` and ``test``.
    """
    unknown = set(shifted) - set(SHIFTED_DOMAINS)
    if unknown:
        raise ValueError(f"unknown shifted domains {sorted(unknown)}; expected some of {SHIFTED_DOMAINS}")
    entries: list[DomainEntry] = []
    seen: set[str] = set()
    for item in natural:
        split = CORPUS_TO_STUDY[item.split]
        if split == "train":
            path = Path(os.path.relpath(corpus_dir / item.path, out_dir)).as_posix()
        else:
            path = study_path("natural", split, item.id)
            (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(corpus_dir / item.path, out_dir / path)
        seen.add(item.sha256)
        entries.append(DomainEntry(item.id, split, "natural", item.source, item.version, item.file, item.licence,
                                   item.copyright, item.sha256, item.width, item.height, path))
    for domain in SHIFTED_DOMAINS:
        for candidate in sorted(shifted.get(domain, ()), key=lambda c: (c.source, c.file)):
            digest = candidate.digest or sha256_file(candidate.path)
            if digest in seen:
                continue
            seen.add(digest)
            split = CORPUS_TO_STUDY[split_of(digest, SHIFTED_FRACTIONS)]
            image_id = image_id_for(candidate.name, digest)
            path = study_path(domain, split, image_id)
            short_side = SHORT_SIDE[domain]
            if short_side:
                image = resized(candidate.path, short_side)
            else:
                with Image.open(candidate.path) as original:
                    image = original.convert("RGB")
            (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
            image.save(out_dir / path, optimize=True)
            with Image.open(candidate.path) as original:
                width, height = original.size
            entries.append(DomainEntry(image_id, split, domain, candidate.source, candidate.version, candidate.file,
                                       candidate.licence, candidate.copyright, digest, width, height, path))
    written = {out_dir / e.path for e in entries if e.split != "train"}
    for stale in [*out_dir.glob("collection/*.png"), *out_dir.glob("collection/*/*.png"), *out_dir.glob("test/*/*.png")]:
        if stale not in written:
            stale.unlink()
    write_domain_manifest(entries, out_dir / MANIFEST_NAME)
    return entries


def split_counts(entries: Sequence[DomainEntry]) -> dict[str, dict[str, int]]:
    """{domain: {split: images}} for every domain and split, zeros included."""
    counts = Counter((e.domain, e.split) for e in entries)
    return {domain: {split: counts[domain, split] for split in SPLITS} for domain in DOMAINS}


def write_domain_manifest(entries: Sequence[DomainEntry], path: Path) -> None:
    natural = dict(zip(SPLITS, DEFAULT_FRACTIONS))
    payload = {
        "paths": "relative to this file's directory",
        "split_rule": {
            "hash": "sha256 of the original file, first 16 hex digits / 2^64, against cumulative fractions",
            "natural": {**natural, "note": "the prior corpus' split (collection = its 'retrieval'); its pinned "
                                           "files (the default run image) stay in test"},
            "astronomy": dict(zip(SPLITS, SHIFTED_FRACTIONS)),
            "documents": {**dict(zip(SPLITS, SHIFTED_FRACTIONS)),
                          "note": "a page's hash is sha256('<sha256 of the PDF>#page=<N>')"},
            "duplicates": "exact duplicates (same sha256) kept once: natural first, then astronomy, documents",
        },
        "pages": {"dpi": pages.DPI, "per_pdf": pages.PAGES_PER_PDF, "min_ink": pages.MIN_INK,
                  "rule": pages.PAGE_RULE},
        "short_side": SHORT_SIDE,
        "counts": split_counts(entries),
        "images": [asdict(e) for e in entries],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_domain_manifest(path: Path) -> list[DomainEntry]:
    return [DomainEntry(**item) for item in json.loads(Path(path).read_text(encoding="utf-8"))["images"]]
