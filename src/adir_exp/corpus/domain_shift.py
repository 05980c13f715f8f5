"""The domain-shift study's images: natural photos, astronomy photographs and typeset pages, split by source.

Test-time adaptation should matter most where the prior knows least. The prior is trained on natural photos
only (the corpus' train split); the study reconstructs held-out images of three domains and draws adaptation
images from one retrieval collection that holds all three. A test image and the collection must not share a
*source*: pieces of one photographer's mosaic, pages of one PDF, photos of one package. So every image gets a
``group`` (:func:`source_groups`) and the split is drawn per group, from the SHA-256 of the group's name (its
first 64 bits as a number in [0, 1) against cumulative fractions, as :func:`~adir_exp.corpus.photos.split_of`):

- astronomy: a series (the name without a piece index: ``lmc_01..16`` → ``lmc``, ``rho-a00`` → ``rho``,
  ``ic2118-1/-2`` → ``ic2118``) joined with every image whose ``textures.json`` credit links the same specific
  page (a mosaic cut from one published picture); collection 0.70 / test 0.30;
- documents: the PDF; collection 0.70 / test 0.30;
- natural: the package, or for packages that credit each photo (GCompris, Palapeli) the credited author within
  the package; the photos the prior was trained on keep the corpus' train split (the prior was trained on it),
  the others go collection 0.50 / test 0.50 by group.

The collection is balanced (``balance``): each domain keeps as many collection images as the smallest domain has
(those with the lowest image hashes); the rest are recorded as ``reserve`` and not written. So a random draw from
the collection is a third of each domain, and K-NN precision means the same for every domain.

Exact duplicates are kept once across all domains (natural first). Natural and astronomy images are stored with
short side 384 px, pages at 150 dpi.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from PIL import Image

from adir_exp.corpus import pages
from adir_exp.corpus.photos import (
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
RESERVE = "reserve"  # collection-side images left out to balance the collection's domains (not written)
SHIFTED_FRACTIONS = (0.0, 0.7, 0.3)  # train / collection / test for a shifted domain: never train
NATURAL_FRACTIONS = (0.0, 0.5, 0.5)  # the natural photos the prior was not trained on
PER_FILE_CREDITS = frozenset({"debian:gcompris-qt-data", "debian:palapeli-data"})  # packages crediting each photo
PIECE_INDEX = re.compile(r"^(?P<series>.+?)[-_](?:\d{1,2}|[a-z]\d{2})$")  # lmc_01, ic2118-1, rho-a00
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
    path: str  # relative to the manifest's directory ("" for reserve images: not written)
    group: str = ""  # the source (series, PDF, package or author): never on both sides of the split


def series_of(name: str) -> str:
    """An astronomy image's series: its name without a piece index (``lmc_07`` → ``lmc``)."""
    match = PIECE_INDEX.match(name)
    return match["series"] if match else name


def specific_link(credit: str) -> str | None:
    """The credit's first link to a specific page (a path of ≥ 2 segments), not to a photographer's home page."""
    for url in re.findall(r"https?://[^\s,;)]+", credit):
        if len([part for part in urlparse(url).path.split("/") if part]) >= 2:
            return url
    return None


def astronomy_groups(names: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """{key: group} for astronomy images given as {key: (name, credit)}: the connected components of "same
    series" and "credit links the same specific page", named ``astronomy:<smallest series>``."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(node: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for key, (name, credit) in names.items():
        parent[root(("image", key))] = root(("series", series_of(name)))
        if link := specific_link(credit):
            parent[root(("image", key))] = root(("link", link))
    members: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in names:
        members[root(("image", key))].append(key)
    return {key: f"astronomy:{min(series_of(names[k][0]) for k in keys)}"
            for keys in members.values() for key in keys}


def natural_group(source: str, copyright: str) -> str:
    """A natural photo's source: its package, or the credited author where the package credits each photo."""
    if source in PER_FILE_CREDITS:
        return f"natural:{source}:{copyright.split(';')[0].strip()}"
    return f"natural:{source}"


def document_group(file: str) -> str:
    """A page's source: its PDF (``usr/share/R/doc/manual/R-FAQ.pdf#page=3`` → ``documents:R-FAQ.pdf``)."""
    return f"documents:{file.split('#')[0].rsplit('/', 1)[-1]}"


def group_split(group: str, fractions: Sequence[float]) -> str:
    """The study split of every image of ``group``, from the SHA-256 of its name."""
    return CORPUS_TO_STUDY[split_of(hashlib.sha256(group.encode()).hexdigest(), fractions)]


def balanced(entries: list[DomainEntry]) -> list[DomainEntry]:
    """Each domain keeps as many collection images as the smallest domain (lowest image hashes); the others
    become ``reserve`` (not written)."""
    per_domain = defaultdict(list)
    for entry in entries:
        if entry.split == "collection":
            per_domain[entry.domain].append(entry)
    size = min((len(items) for items in per_domain.values()), default=0)
    reserve = {id(e) for items in per_domain.values() for e in sorted(items, key=lambda e: e.sha256)[size:]}
    return [replace(e, split=RESERVE, path="") if id(e) in reserve else e for e in entries]


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
    balance: bool = True,
) -> list[DomainEntry]:
    """Write ``out_dir/collection/<domain>`` and ``out_dir/test/<domain>`` plus the manifest; returns its entries.

    ``natural`` is the corpus manifest (``build_corpus`` wrote its images into ``corpus_dir``), ``shifted`` maps
    ``astronomy`` / ``documents`` to their candidates. ``balance``: cut every domain's collection to the smallest
    one's size. Files of an earlier build that are no longer chosen are removed from ``collection`` and ``test``.
    """
    unknown = set(shifted) - set(SHIFTED_DOMAINS)
    if unknown:
        raise ValueError(f"unknown shifted domains {sorted(unknown)}; expected some of {SHIFTED_DOMAINS}")
    entries: list[DomainEntry] = []
    origins: dict[str, Path] = {}  # image id → the file its stored copy is made from
    seen: set[str] = set()
    for item in natural:
        group = natural_group(item.source, item.copyright)
        split = "train" if item.split == "train" else group_split(group, NATURAL_FRACTIONS)
        seen.add(item.sha256)
        origins[item.id] = corpus_dir / item.path
        entries.append(DomainEntry(item.id, split, "natural", item.source, item.version, item.file, item.licence,
                                   item.copyright, item.sha256, item.width, item.height, "", group))
    for domain in SHIFTED_DOMAINS:
        chosen = []
        for candidate in sorted(shifted.get(domain, ()), key=lambda c: (c.source, c.file)):
            digest = candidate.digest or sha256_file(candidate.path)
            if digest not in seen:
                seen.add(digest)
                chosen.append((candidate, digest, image_id_for(candidate.name, digest)))
        if domain == "astronomy":
            groups = astronomy_groups({image_id: (c.name, c.copyright) for c, _, image_id in chosen})
        else:
            groups = {image_id: document_group(c.file) for c, _, image_id in chosen}
        for candidate, digest, image_id in chosen:
            with Image.open(candidate.path) as original:
                width, height = original.size
            origins[image_id] = candidate.path
            group = groups[image_id]
            entries.append(DomainEntry(image_id, group_split(group, SHIFTED_FRACTIONS), domain, candidate.source,
                                       candidate.version, candidate.file, candidate.licence, candidate.copyright,
                                       digest, width, height, "", group))
    if balance:
        entries = balanced(entries)
    written = []
    for index, entry in enumerate(entries):
        if entry.split == "train":
            path = Path(os.path.relpath(origins[entry.id], out_dir)).as_posix()
        elif entry.split == RESERVE:
            continue
        else:
            path = study_path(entry.domain, entry.split, entry.id)
            _store(origins[entry.id], out_dir / path, entry.domain)
            written.append(out_dir / path)
        entries[index] = replace(entry, path=path)
    for stale in [*out_dir.glob("collection/*.png"), *out_dir.glob("collection/*/*.png"), *out_dir.glob("test/*/*.png")]:
        if stale not in written:
            stale.unlink()
    write_domain_manifest(entries, out_dir / MANIFEST_NAME, balance)
    return entries


def _store(origin: Path, target: Path, domain: str) -> None:
    """The study's copy of an image: natural photos as the corpus stored them, astronomy at short side 384,
    pages as rendered."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if domain == "natural":
        shutil.copyfile(origin, target)
        return
    short_side = SHORT_SIDE[domain]
    if short_side:
        image = resized(origin, short_side)
    else:
        with Image.open(origin) as original:
            image = original.convert("RGB")
    image.save(target, optimize=True)


def groups_crossing(entries: Sequence[DomainEntry], sides: Sequence[str] = ("collection", "test")) -> dict[str, set]:
    """{group: splits} for every group found in more than one of ``sides``: empty for a clean split."""
    splits: dict[str, set] = defaultdict(set)
    for entry in entries:
        if entry.split in sides:
            splits[entry.group].add(entry.split)
    return {group: found for group, found in splits.items() if len(found) > 1}


def split_counts(entries: Sequence[DomainEntry]) -> dict[str, dict[str, int]]:
    """{domain: {split: images}} for every domain and split (and the reserve), zeros included."""
    counts = Counter((e.domain, e.split) for e in entries)
    return {domain: {split: counts[domain, split] for split in (*SPLITS, RESERVE)} for domain in DOMAINS}


def write_domain_manifest(entries: Sequence[DomainEntry], path: Path, balance: bool = True) -> None:
    payload = {
        "paths": "relative to this file's directory",
        "split_rule": {
            "unit": "the source group (field 'group'): every image of a group is on one side",
            "hash": "sha256 of the group's name, first 16 hex digits / 2^64, against cumulative fractions",
            "natural": {**dict(zip(SPLITS, NATURAL_FRACTIONS)),
                        "group": "the package; the credited author within packages that credit each photo "
                                 f"({', '.join(sorted(PER_FILE_CREDITS))})",
                        "train": "the prior corpus' own train split (what the prior was trained on) stays train"},
            "astronomy": {**dict(zip(SPLITS, SHIFTED_FRACTIONS)),
                          "group": "series (name without a piece index) joined with images whose credit links "
                                   "the same specific page"},
            "documents": {**dict(zip(SPLITS, SHIFTED_FRACTIONS)), "group": "the PDF"},
            "balance": ("each domain keeps as many collection images as the smallest domain (lowest image "
                        "hashes); the rest are 'reserve', not written") if balance else "off",
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
