"""The prior's image corpus: natural photos from registry packages, split by source image, with provenance.

Every photo comes from a package an ordinary client can fetch (Debian wallpaper packages via ``apt-get
download``, the sample data inside the scikit-image and matplotlib wheels), so the corpus can be rebuilt
anywhere and each file's licence is the one its package declares. The split is a function of the original
file's SHA-256 alone, so it is stable across machines and runs, and an image that two packages ship lands in
one split only; crops are taken later, inside one split, so no scene is shared between splits.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from adir_exp.data.images import IMAGE_SUFFIXES

SPLITS = ("train", "retrieval", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Candidate:
    """One original photo on disk and where it came from."""

    name: str  # short human-readable stem used in output file names
    source: str  # e.g. "debian:mate-backgrounds" or "pypi:scikit-image"
    version: str
    file: str  # path inside the package
    licence: str
    copyright: str  # holders as the package states them (attribution for CC-BY images)
    path: Path


@dataclass(frozen=True)
class DebianSource:
    """A Debian package and the members of it that are photographs (the rest is illustration or vector art)."""

    package: str
    members: tuple[str, ...]


def _plasma(*names: str) -> tuple[str, ...]:
    # Each Plasma wallpaper ships one picture at several resolutions; the largest is picked at fetch time.
    return tuple(f"usr/share/wallpapers/{n}/contents/images/*" for n in names)


# Chosen by looking at every image of these packages: photographs kept, illustrations/abstract art dropped.
DEBIAN_SOURCES: tuple[DebianSource, ...] = (
    DebianSource(
        "mate-backgrounds",
        tuple(
            f"usr/share/backgrounds/mate/nature/{n}.jpg"
            for n in (
                "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow",
                "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower",
            )
        ),
    ),
    DebianSource(
        "plasma-workspace-wallpapers",
        _plasma(
            "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
            "Grey", "Kite", "OneStandsOut", "Path", "Volna", "summer_1am",
        ),
    ),
    DebianSource(
        "lomiri-wallpapers-16.04",
        tuple(
            f"usr/share/backgrounds/{n}.jpg"
            for n in (
                "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
                "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
                "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
                "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
                "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
            )
        ),
    ),
    DebianSource(
        "lomiri-wallpapers-20.04",
        ("usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg", "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"),
    ),
)

# scikit-image sample photos: (licence, author) as stated in the skimage.data docstrings.
SKIMAGE_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut.png": ("public domain", "NASA"),
    "brick.png": ("CC0-1.0", "CC0Textures"),
    "camera.png": ("CC0-1.0", "Lav Varshney"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti"),
    "grass.png": ("CC0-1.0", "scikit-image sample data"),
    "gravel.png": ("CC0-1.0", "CC0Textures"),
    "hubble_deep_field.jpg": ("public domain", "NASA"),
    "rocket.jpg": ("public domain", "SpaceX"),
}
MATPLOTLIB_PHOTOS: dict[str, tuple[str, str]] = {
    "grace_hopper.jpg": ("public domain", "U.S. Navy"),
}

# The framework's default reconstruction target (assets/astronaut_256.png) must never be trained on or retrieved.
PINNED_SPLITS: dict[tuple[str, str], str] = {("pypi:scikit-image", "skimage/data/astronaut.png"): "test"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_of(sha256: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """Deterministic split from the content hash: the first 64 bits as a uniform number in [0, 1)."""
    if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers summing to 1, got {fractions}")
    u = int(sha256[:16], 16) / float(1 << 64)
    edge = 0.0
    for split, fraction in zip(SPLITS, fractions):
        edge += fraction
        if u < edge:
            return split
    return SPLITS[-1]


@dataclass(frozen=True)
class CopyrightStanza:
    """One ``Files:`` paragraph of a DEP-5 copyright file."""

    patterns: tuple[str, ...]
    licence: str  # short name (first line of ``License:``)
    holders: str  # the ``Copyright:`` lines joined with "; "


def parse_copyright(text: str) -> list[CopyrightStanza]:
    """The ``Files:`` paragraphs of a DEP-5 copyright file, in order."""
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key.strip()] = [value.strip()]
        if "Files" in fields and "License" in fields:
            patterns = tuple(" ".join(fields["Files"]).split())
            holders = "; ".join(line for line in fields.get("Copyright", []) if line)
            stanzas.append(CopyrightStanza(patterns, fields["License"][0], holders))
    return stanzas


def stanza_for(member: str, stanzas: Sequence[CopyrightStanza]) -> CopyrightStanza | None:
    """DEP-5 rule: the last paragraph whose pattern matches wins; patterns may be relative to any directory.

    Patterns name files in the upstream source tree, which need not be where the package installs them
    (lomiri: ``16.04/X.jpg`` → ``usr/share/backgrounds/X.jpg``), so when no path matches, a pattern with the
    member's file name (a specific file, not ``*``) decides.
    """
    found = None
    for stanza in stanzas:
        if any(fnmatch.fnmatch(member, p) or fnmatch.fnmatch(member, f"*/{p}") for p in stanza.patterns):
            found = stanza
    if found is None:
        name = Path(member).name
        for stanza in stanzas:
            if any(Path(p).name == name for p in stanza.patterns):
                found = stanza
    return found


def _display_name(member: str) -> str:
    path = Path(member)
    if re.fullmatch(r"\d+x\d+", path.stem):  # Plasma: <Name>/contents/images/<W>x<H>.jpg
        return path.parents[2].name
    return path.stem


def fetch_debian(source: DebianSource, workdir: Path) -> list[Candidate]:
    """``apt-get download`` the package into ``workdir``, unpack it with ``dpkg -x`` and list its chosen photos."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not list(workdir.glob(f"{source.package}_*.deb")):
        subprocess.run(["apt-get", "download", source.package], cwd=workdir, check=True, capture_output=True)
    deb = max(workdir.glob(f"{source.package}_*.deb"))
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = workdir / source.package
    if not root.is_dir():
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    copyright_file = root / "usr/share/doc" / source.package / "copyright"
    stanzas = parse_copyright(copyright_file.read_text(errors="replace"))
    out = []
    for pattern in source.members:
        matches = sorted(root.glob(pattern), key=lambda p: (p.stat().st_size, p.name))
        if not matches:
            raise FileNotFoundError(f"{source.package} {version} has no {pattern}")
        path = matches[-1]  # largest rendition of that picture
        member = str(path.relative_to(root))
        stanza = stanza_for(member, stanzas)
        unknown = f"see /usr/share/doc/{source.package}/copyright"
        licence, holders = (stanza.licence, stanza.holders or unknown) if stanza else (unknown, unknown)
        out.append(Candidate(_display_name(member), f"debian:{source.package}", version, member, licence, holders,
                             path))
    return out


def python_candidates() -> list[Candidate]:
    """The photographs shipped inside the scikit-image and matplotlib wheels."""
    import matplotlib
    import skimage

    out = []
    skimage_data = Path(skimage.__file__).parent / "data"
    for name, (licence, holder) in SKIMAGE_PHOTOS.items():
        out.append(Candidate(Path(name).stem, "pypi:scikit-image", skimage.__version__,
                             f"skimage/data/{name}", licence, holder, skimage_data / name))
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    for name, (licence, holder) in MATPLOTLIB_PHOTOS.items():
        out.append(Candidate(Path(name).stem, "pypi:matplotlib", matplotlib.__version__,
                             f"matplotlib/mpl-data/sample_data/{name}", licence, holder, sample_data / name))
    return out


def folder_candidates(folder: Path, source: str, version: str, licence: str, copyright: str) -> list[Candidate]:
    """Every image in a folder as candidates of one source (user collections, tests)."""
    return [
        Candidate(p.stem, source, version, p.name, licence, copyright, p)
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]


def _resized(path: Path, short_side: int) -> Image.Image:
    """RGB image downscaled (Lanczos) so its short side is ``short_side``; smaller images are kept as they are."""
    with Image.open(path) as image:
        image.draft("RGB", (short_side * 2, short_side * 2))  # JPEG: decode at a reduced scale ≥ 2× the target
        image = image.convert("RGB")
    scale = short_side / min(image.size)
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


@dataclass
class ManifestEntry:
    id: str
    split: str
    source: str
    version: str
    file: str
    licence: str
    copyright: str
    sha256: str
    width: int
    height: int
    path: str  # relative to the corpus directory of its split (cache for train, bundle otherwise)


def build_corpus(
    candidates: Iterable[Candidate],
    cache_dir: Path,
    bundle_dir: Path,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    pinned: Mapping[tuple[str, str], str] = PINNED_SPLITS,
    train_short_side: int = 384,
    bundle_short_side: int = 256,
) -> list[ManifestEntry]:
    """Split, resize and write the corpus; returns the manifest (also written to both directories).

    The training split goes to ``cache_dir/train`` (large, rebuilt by ``adir-make-data``); the retrieval
    collection and held-out test images go to ``bundle_dir/{retrieval,test}`` as PNG, small enough to ship.
    Exact duplicates (same SHA-256) are kept once.
    """
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for candidate in sorted(candidates, key=lambda c: (c.source, c.file)):
        digest = sha256_file(candidate.path)
        if digest in seen:
            continue
        seen.add(digest)
        split = pinned.get((candidate.source, candidate.file)) or split_of(digest, fractions)
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", candidate.name).strip("-") or "image"
        image_id = f"{slug}-{digest[:8]}"
        root = cache_dir if split == "train" else bundle_dir
        relative = f"{split}/{image_id}.png"
        image = _resized(candidate.path, train_short_side if split == "train" else bundle_short_side)
        (root / split).mkdir(parents=True, exist_ok=True)
        image.save(root / relative, optimize=True)
        with Image.open(candidate.path) as original:
            width, height = original.size
        entries.append(ManifestEntry(image_id, split, candidate.source, candidate.version, candidate.file,
                                     candidate.licence, candidate.copyright, digest, width, height, relative))
    write_manifest(entries, bundle_dir / MANIFEST_NAME, fractions, pinned)
    write_manifest(entries, cache_dir / MANIFEST_NAME, fractions, pinned)
    return entries


def write_manifest(
    entries: Sequence[ManifestEntry],
    path: Path,
    fractions: Sequence[float],
    pinned: Mapping[tuple[str, str], str],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "splits": dict(zip(SPLITS, fractions)),
        "split_rule": "sha256 of the original file, first 16 hex digits / 2^64, cumulative fractions; pinned files excepted",
        "pinned": [{"source": s, "file": f, "split": v} for (s, f), v in sorted(pinned.items())],
        "images": [asdict(e) for e in entries],
    }
    path.write_text(json.dumps(payload, indent=1) + "\n")


def read_manifest(path: Path) -> list[ManifestEntry]:
    return [ManifestEntry(**item) for item in json.loads(Path(path).read_text())["images"]]
