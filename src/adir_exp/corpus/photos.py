"""The prior's image corpus: natural photos from registry packages, split by source image, with provenance.

Every photo comes from a package an ordinary client can fetch (Debian packages via ``apt-get download``:
wallpapers, GCompris' pictures inside its Qt resource files, OpenCV's samples, game and demo photos; the sample
data inside the scikit-image, matplotlib and scikit-learn wheels), so the corpus can be rebuilt anywhere and
each file's licence is the one its package declares. The split is a function of the original
file's SHA-256 alone, so it is stable across machines and runs, and an image that two packages ship lands in
one split only; crops are taken later, inside one split, so no scene is shared between splits.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image

from adir_exp.corpus.rcc import RccArchive
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
    digest: str = ""  # identity for the split when ``path`` is a rendering (a PDF page), not the original file


# (unpacked package root, member) → (licence or None, holders) from per-file metadata the package ships.
Credits = Callable[[Path, str], "tuple[str | None, str] | None"]


@dataclass(frozen=True)
class DebianSource:
    """A Debian package and the members of it that are photographs (the rest is illustration or vector art).

    A member is a path pattern inside the package, or ``<file>.rcc:/<pattern>`` for entries of a Qt resource
    file. By default each pattern names one picture and its largest rendition wins (wallpapers ship several
    sizes); with ``each`` every match is a picture of its own. Matches whose short side is below
    ``min_short_side`` are skipped. ``licence`` = (licence, holders) is what the package declares when its
    copyright file is not machine-readable (DEP-5); ``credits`` reads per-file metadata the package ships.
    """

    package: str
    members: tuple[str, ...]
    each: bool = False
    min_short_side: int = 0
    licence: tuple[str, str] | None = None
    credits: Credits | None = None


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

# The sources above are the ones whose retrieval / test images ship in ``assets/corpus`` (kept byte-identical);
# the ones below only add images, under ``$ADIR_HOME``.
BUNDLED_SOURCES = frozenset(
    {f"debian:{source.package}" for source in DEBIAN_SOURCES} | {"pypi:scikit-image", "pypi:matplotlib"}
)


def _gcompris(activity: str, *patterns: str) -> tuple[str, ...]:
    return tuple(
        f"usr/share/gcompris-qt/rcc/{activity}.rcc:/gcompris/src/activities/{activity}/resource/{p}"
        for p in patterns
    )


def _palapeli_credits(root: Path, member: str) -> tuple[str | None, str] | None:
    """Palapeli puzzles name author and licence in the ``.desktop`` file beside the picture."""
    desktop = (root / member).with_suffix(".desktop")
    if not desktop.is_file():
        return None
    fields = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
    author = fields.get("X-KDE-PluginInfo-Author", "").strip()
    website = fields.get("X-KDE-PluginInfo-Website", "").strip()
    licence = fields.get("X-KDE-PluginInfo-License", "").strip() or None
    return licence, f"{author} ({website})" if website else author


@lru_cache(maxsize=64)
def _rcc(path: Path) -> RccArchive:
    return RccArchive(path.read_bytes(), path.name)


def parse_readme_credits(text: str) -> dict[str, tuple[str, str]]:
    """file → (licence, holders) from a GCompris resource README.

    Paragraphs of ``Copyright:``, ``License:``, ``Source:``, ``Comment(s):`` and ``Files:`` fields, where the
    file names may follow ``Files:`` on lines of their own.
    """
    out = {}
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in paragraph.splitlines():
            match = re.match(r"([A-Za-z-]+):(.*)", line)
            if match:
                key = match[1].lower().rstrip("s")
                fields[key] = [match[2].strip()]
            elif key and line.strip():
                fields[key].append(line.strip())
        holders = "; ".join(part for part in (
            " ".join(fields.get("copyright", [])),
            " ".join(fields.get("source", [])),
            "comment: " + " ".join(fields["comment"]) if fields.get("comment") else "",
        ) if part)
        for name in " ".join(fields.get("file", [])).split():
            out[name] = (" ".join(fields.get("license", [])), holders)
    return out


def _gcompris_credits(root: Path, member: str) -> tuple[str | None, str] | None:
    """GCompris credits each photo (author, source, licence) in a README beside it in the ``.rcc``.

    debian/copyright only has its catch-all paragraph for most of them (where it lists them, it names the .jpg
    sources that the build turns into .webp).
    """
    rcc, inner = member.split(":/", 1)
    archive = _rcc(root / rcc)
    folder = Path(inner).parent
    while folder.name and folder.name != "activities":
        readme = f"{folder.as_posix()}/README"
        if readme in archive.entries:
            credits = parse_readme_credits(archive.read(readme).decode(errors="replace"))
            name = Path(inner).relative_to(folder).as_posix()
            if name in credits:
                return credits[name]
        folder = folder.parent
    return None


# Chosen by looking at every image of at least 400 px (short side) in these packages: photographs kept;
# drawings, cartoons, paintings, renders, screenshots, masks and calibration patterns dropped. Where two files
# show the same scene (a stereo pair, a second shot, two views of one wall), only one is kept, so that no scene
# can land in two splits.
MORE_DEBIAN_SOURCES: tuple[DebianSource, ...] = (
    DebianSource(
        "gcompris-qt-data",
        _gcompris("erase", "*.webp")  # 33 animal photos
        + _gcompris("explore_farm_animals", "animals/*.webp")
        + _gcompris("explore_world_animals", "animals/*.webp")
        + _gcompris("explore_world_music", "music/*.webp")
        + _gcompris("explore_monuments", "*/*.webp")  # 47 monument photos ≥ 400 px, six countries
        + _gcompris("clickgame", "sea*.webp")  # underwater photos (the fish are separate sprites)
        # details: the other backgrounds are paintings, or the Taj Mahal / Neuschwanstein from the same spot
        # as an explore_monuments photo
        + _gcompris("details", *(f"image/{n}_background.webp"
                                 for n in ("EgeskovSlotSpejling", "GizahPyramids", "EilanDonanCastle"))),
        each=True,
        min_short_side=400,
        credits=_gcompris_credits,
    ),
    DebianSource(
        "opencv-doc",
        tuple(
            f"usr/share/doc/opencv-doc/examples/{n}"
            for n in (
                "data/aero1.jpg", "data/aloeL.jpg", "data/apple.jpg", "data/baboon.jpg", "data/basketball1.png",
                "data/board.jpg", "data/building.jpg", "data/chicky_512.png", "data/ela_original.jpg",
                "data/fruits.jpg", "data/graf1.png", "data/left.jpg", "data/left01.jpg", "data/leuvenA.jpg",
                "data/orange.jpg", "data/squirrel_cls.jpg", "data/stuff.jpg", "data/sudoku.png",
                *(f"text/scenetext0{i}.jpg" for i in range(1, 7)),
                *(f"text/scenetext_segmented_word0{i}.jpg" for i in range(1, 6)),
            )
        ),
    ),
    DebianSource(
        "lxqt-themes",
        tuple(
            f"usr/share/lxqt/wallpapers/{n}"
            for n in (
                "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
                "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg",
            )
        ),
    ),
    DebianSource(
        "kphotoalbum",
        # the demo album, one shot per scene; left out: the four files its index.xml rotates (stored sideways)
        tuple(
            f"usr/share/kphotoalbum/demo/{n}.jpg"
            for n in (
                "anne_helene", "bar55", "blackie", "cold_water", "donna", "grand_canyon_2", "grand_canyon_3",
                "jesper", "new_wave_2", "pool", "qt-logo", "skagen", "snow", "spiff", "sunset",
            )
        ),
        licence=("GPL-2+", "2003-2014 Jesper K. Pedersen and the KPhotoAlbum authors"),
    ),
    DebianSource(
        "palapeli-data",
        ("usr/share/palapeli/collection/*.jpg",),  # the 5 puzzle photos (its backgrounds/ are textures)
        each=True,
        credits=_palapeli_credits,
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
# scikit-learn's sklearn/datasets/images/README.txt (Flickr photos retrieved by Robert Layton).
SKLEARN_PHOTOS: dict[str, tuple[str, str]] = {
    "china.jpg": ("CC-BY-2.0", "danielbuechele (flickr.com/photos/danielbuechele/6061409035)"),
    "flower.jpg": ("CC-BY-2.0", "vultilion (flickr.com/photos/vultilion/6056698931)"),
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
                key, value = (part.strip() for part in line.split(":", 1))
                fields[key] = [value]
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


def unpack_debian(package: str, workdir: Path) -> tuple[Path, str]:
    """``apt-get download`` the package into ``workdir`` (unless a .deb is there) and ``dpkg -x`` it.

    Returns the unpacked root and the package version.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if not list(workdir.glob(f"{package}_*.deb")):
        done = subprocess.run(["apt-get", "download", package], cwd=workdir, capture_output=True, text=True,
                              check=False)
        if done.returncode:
            raise RuntimeError(f"apt-get download {package} failed ({done.stderr.strip()}); run apt-get update, "
                               f"or put {package}_*.deb into {workdir} and pass --debs {workdir}")
    deb = max(workdir.glob(f"{package}_*.deb"))
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = workdir / package
    if not root.is_dir():
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return root, version


def _rcc_matches(root: Path, pattern: str) -> list[tuple[str, Path]]:
    """Entries of a Qt resource file matching ``<file>.rcc:/<pattern>``, extracted under ``root/rcc-files``."""
    rcc, inner = pattern.split(".rcc:/", 1)
    archive = _rcc(root / f"{rcc}.rcc")
    out = []
    for entry in sorted(archive.entries):
        if fnmatch.fnmatch(entry, inner):
            path = root / "rcc-files" / Path(rcc).name / entry
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.read(entry))
            out.append((f"{rcc}.rcc:/{entry}", path))
    return out


def _short_side(path: Path) -> int:
    with Image.open(path) as image:
        return min(image.size)


def fetch_debian(source: DebianSource, workdir: Path) -> list[Candidate]:
    """Download and unpack the package into ``workdir`` and list its chosen photos with their licences."""
    root, version = unpack_debian(source.package, workdir)
    copyright_file = root / "usr/share/doc" / source.package / "copyright"
    stanzas = parse_copyright(copyright_file.read_text(errors="replace"))
    unknown = f"see /usr/share/doc/{source.package}/copyright"
    out = []
    for pattern in source.members:
        if ".rcc:/" in pattern:
            matches = _rcc_matches(root, pattern)
        else:
            matches = [(str(p.relative_to(root)), p) for p in root.glob(pattern) if p.is_file()]
        if source.min_short_side:
            matches = [(m, p) for m, p in matches if _short_side(p) >= source.min_short_side]
        if not matches:
            least = f" with a short side ≥ {source.min_short_side} px" if source.min_short_side else ""
            raise FileNotFoundError(f"{source.package} {version} has no {pattern}{least}: the package changed, "
                                    f"review its member list in adir_exp.corpus.photos")
        if not source.each:
            matches = [max(matches, key=lambda m: (m[1].stat().st_size, m[1].name))]  # largest rendition
        for member, path in sorted(matches):
            stanza = stanza_for(member.split(".rcc:/")[-1], stanzas)
            if stanza:
                licence, holders = stanza.licence, stanza.holders or unknown
            else:
                licence, holders = source.licence or (unknown, unknown)
            credited = source.credits(root, member) if source.credits else None
            if credited:
                licence, holders = credited[0] or licence, credited[1] or holders
            out.append(Candidate(_display_name(member), f"debian:{source.package}", version, member, licence,
                                 holders, path))
    return out


def python_candidates() -> list[Candidate]:
    """The photographs shipped inside the scikit-image, matplotlib and scikit-learn wheels."""
    import matplotlib
    import skimage
    import sklearn

    out = []
    skimage_data = Path(skimage.__file__).parent / "data"
    for name, (licence, holder) in SKIMAGE_PHOTOS.items():
        out.append(Candidate(Path(name).stem, "pypi:scikit-image", skimage.__version__,
                             f"skimage/data/{name}", licence, holder, skimage_data / name))
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    for name, (licence, holder) in MATPLOTLIB_PHOTOS.items():
        out.append(Candidate(Path(name).stem, "pypi:matplotlib", matplotlib.__version__,
                             f"matplotlib/mpl-data/sample_data/{name}", licence, holder, sample_data / name))
    sklearn_images = Path(sklearn.__file__).parent / "datasets" / "images"
    for name, (licence, holder) in SKLEARN_PHOTOS.items():
        out.append(Candidate(Path(name).stem, "pypi:scikit-learn", sklearn.__version__,
                             f"sklearn/datasets/images/{name}", licence, holder, sklearn_images / name))
    return out


def folder_candidates(folder: Path, source: str, version: str, licence: str, copyright: str) -> list[Candidate]:
    """Every image in a folder as candidates of one source (user collections, tests)."""
    return [
        Candidate(p.stem, source, version, p.name, licence, copyright, p)
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]


def resized(path: Path, short_side: int) -> Image.Image:
    """RGB image downscaled (Lanczos) so its short side is ``short_side``; smaller images are kept as they are."""
    with Image.open(path) as image:
        image.draft("RGB", (short_side * 2, short_side * 2))  # JPEG: decode at a reduced scale ≥ 2× the target
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # same colours; PIL warns on a direct P → RGB here
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
    path: str  # relative to the manifest's directory (the bundle holds no train images; they are in the cache)


def build_corpus(
    candidates: Iterable[Candidate],
    cache_dir: Path,
    bundle_dir: Path,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    pinned: Mapping[tuple[str, str], str] = PINNED_SPLITS,
    train_short_side: int = 384,
    bundle_short_side: int = 256,
    bundle_sources: Collection[str] | None = None,
) -> list[ManifestEntry]:
    """Split, resize and write the corpus; returns the manifest of every image.

    Every split goes to ``cache_dir/{train,retrieval,test}`` at ``train_short_side`` (large, rebuilt by
    ``adir-make-data``; its manifest lists every image). The retrieval and held-out test images of
    ``bundle_sources`` (default: all) also go to ``bundle_dir/{retrieval,test}`` at ``bundle_short_side``,
    small enough to ship, with a manifest of those sources' images only; so sources added later leave the
    bundle as it was. Exact duplicates (same SHA-256) are kept once, under a bundled source where one ships it.
    """
    def bundled(source: str) -> bool:
        return bundle_sources is None or source in bundle_sources

    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for candidate in sorted(candidates, key=lambda c: (not bundled(c.source), c.source, c.file)):
        digest = candidate.digest or sha256_file(candidate.path)
        if digest in seen:
            continue
        seen.add(digest)
        split = pinned.get((candidate.source, candidate.file)) or split_of(digest, fractions)
        image_id = image_id_for(candidate.name, digest)
        relative = f"{split}/{image_id}.png"
        targets = [(cache_dir, train_short_side)]
        if split != "train" and bundled(candidate.source):
            targets.append((bundle_dir, bundle_short_side))
        for root, short_side in targets:
            (root / split).mkdir(parents=True, exist_ok=True)
            resized(candidate.path, short_side).save(root / relative, optimize=True)
        with Image.open(candidate.path) as original:
            width, height = original.size
        entries.append(ManifestEntry(image_id, split, candidate.source, candidate.version, candidate.file,
                                     candidate.licence, candidate.copyright, digest, width, height, relative))
    entries.sort(key=lambda e: (e.source, e.file))
    write_manifest([e for e in entries if bundled(e.source)], bundle_dir / MANIFEST_NAME, fractions, pinned)
    write_manifest(entries, cache_dir / MANIFEST_NAME, fractions, pinned)
    return entries


def image_id_for(name: str, digest: str) -> str:
    """``<slug>-<first 8 hex digits of the hash>``: readable, and unique across sources."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "image"
    return f"{slug}-{digest[:8]}"


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
