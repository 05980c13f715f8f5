"""Where the collection's images come from, cut into units of work (one unit = one embedding shard on disk).

Three kinds of source, told apart by what ``source`` names:

* a directory: every image file below it (recursively, sorted); id = path relative to the directory;
* a ``.txt`` / ``.lst`` file list: one image path per line (relative paths are relative to the list's folder,
  ``#`` starts a comment); id = the line as written;
* webdataset tar shards: a ``.tar`` file, a glob (``/data/oi/*.tar``) or a brace range
  (``/data/oi/shard-{000000..000099}.tar``); every image member is an item, id = ``<tar stem>/<member name>``,
  path = ``<tar path>::<member name>`` (what :func:`read_item` opens).

File sources are cut into units of ``shard_size`` items in a fixed order, tar sources into one unit per tar, so a
resumed build meets the same units and skips the finished ones.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adir_exp.data.images import IMAGE_SUFFIXES

LIST_EXTENSIONS = frozenset({".txt", ".lst"})
TAR_MEMBER_SEPARATOR = "::"


class SourceError(ValueError):
    """The source does not name an image folder, a file list or tar shards, or it holds no images."""


@dataclass(frozen=True)
class Item:
    """One image of the collection: a stable id and where to read it."""

    id: str
    path: str


@dataclass(frozen=True)
class FileUnit:
    """A run of image files; becomes one embedding shard."""

    index: int
    items: tuple[Item, ...]

    @property
    def size(self) -> int | None:
        return len(self.items)

    def read(self) -> Iterator[tuple[Item, bytes | Exception]]:
        """Each item with its encoded bytes, or the error that kept it from being read."""
        for item in self.items:
            try:
                yield item, Path(item.path).read_bytes()
            except OSError as error:
                yield item, error

    def digest(self) -> str:
        return hashlib.sha256("\n".join(f"{i.id}\t{i.path}" for i in self.items).encode()).hexdigest()


@dataclass(frozen=True)
class TarUnit:
    """One webdataset tar shard; its members are only known once it is read."""

    index: int
    tar: str

    @property
    def size(self) -> int | None:
        return None

    def read(self) -> Iterator[tuple[Item, bytes | Exception]]:
        """Image members in archive order; a truncated archive yields what precedes the damage, then the error."""
        stem = Path(self.tar).name.removesuffix(".tar")
        try:
            with tarfile.open(self.tar, mode="r|*") as archive:
                for member in archive:
                    if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    item = Item(f"{stem}/{member.name}", f"{self.tar}{TAR_MEMBER_SEPARATOR}{member.name}")
                    handle = archive.extractfile(member)
                    yield item, handle.read() if handle is not None else OSError("unreadable tar member")
        except (OSError, tarfile.TarError) as error:
            yield Item(f"{stem}/<archive>", self.tar), error

    def digest(self) -> str:
        stat = os.stat(self.tar)
        return hashlib.sha256(f"{self.tar}\t{stat.st_size}".encode()).hexdigest()


Unit = FileUnit | TarUnit


def _expand_braces(pattern: str) -> list[str]:
    """webdataset's ``{000..099}`` numeric ranges (zero padding kept), applied left to right."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if match is None:
        return [pattern]
    first, last = match[1], match[2]
    width = len(first) if first.startswith("0") else 0
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for n in range(int(first), int(last) + 1) for p in _expand_braces(f"{head}{n:0{width}d}{tail}")]


def _tar_paths(source: str) -> list[str]:
    paths: list[str] = []
    for pattern in _expand_braces(source):
        paths.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern])
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise SourceError(f"tar shard(s) not found: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return paths


def _folder_items(root: Path) -> list[Item]:
    items = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                path = Path(directory) / name
                items.append(Item(path.relative_to(root).as_posix(), str(path.resolve())))
    return items


def _list_items(list_file: Path) -> list[Item]:
    items = []
    for line in list_file.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            path = Path(entry) if Path(entry).is_absolute() else list_file.parent / entry
            items.append(Item(entry, str(path.resolve())))
    return items


def plan_units(source: str | Path, shard_size: int) -> list[Unit]:
    """The collection as an ordered list of units; :class:`SourceError` when it holds no image."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    text = str(source)
    path = Path(text)
    if path.is_dir():
        items = _folder_items(path)
        what = f"image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {path}"
    elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
        items = _list_items(path)
        what = f"entries in the file list {path}"
    elif text.endswith(".tar"):
        tars = _tar_paths(text)
        if not tars:
            raise SourceError(f"empty collection: no tar shard matches {text!r}")
        return [TarUnit(i, tar) for i, tar in enumerate(tars)]
    else:
        raise SourceError(
            f"{text!r} is neither an image folder, a .txt/.lst file list, nor .tar shards "
            "(a file, a glob or a {a..b} range)"
        )
    if not items:
        raise SourceError(f"empty collection: no {what}")
    starts = range(0, len(items), shard_size)
    return [FileUnit(n, tuple(items[start : start + shard_size])) for n, start in enumerate(starts)]


def read_item(path: str) -> bytes:
    """The encoded bytes of an item's ``path``: a file, or ``<tar>::<member>``."""
    if TAR_MEMBER_SEPARATOR in path:
        tar, member = path.split(TAR_MEMBER_SEPARATOR, 1)
        with tarfile.open(tar) as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise OSError(f"{member} in {tar} is not a file")
            return handle.read()
    return Path(path).read_bytes()
