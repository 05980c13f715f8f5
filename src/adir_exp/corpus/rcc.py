"""Read Qt binary resource files (``.rcc``), the container gcompris-qt-data keeps its pictures in.

Format (qtbase ``src/tools/rcc/rcc.cpp``, ``src/corelib/io/qresource.cpp``), all integers big-endian:

- header: ``b"qres"``, version (u32, 1–3), offsets of the tree, data and names sections (u32 each) and, from
  version 3, the file's compression flags (u32);
- tree: fixed-size nodes (14 bytes, 22 from version 2 with a u64 modification time), node 0 is the root:
  name offset (u32), flags (u16: 1 zlib, 2 directory, 4 zstd), then for a directory the child count and the
  index of its first child (u32 each), for a file the locale (u16 territory, u16 language) and its data offset;
- names: u16 length, u32 hash, the name in UTF-16BE;
- data: u32 size, then the bytes; a zlib entry is ``qCompress`` output (u32 uncompressed size, zlib stream),
  a zstd entry one zstd frame.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = b"qres"
FLAG_ZLIB = 0x01
FLAG_DIRECTORY = 0x02
FLAG_ZSTD = 0x04


class RccError(ValueError):
    """The bytes are not a Qt resource file this reader understands."""


@dataclass(frozen=True)
class RccEntry:
    """One file inside an ``.rcc``: its path (``/``-separated, no leading slash) and where its bytes are."""

    path: str
    flags: int
    offset: int  # of the u32 size field, from the start of the file

    @property
    def compression(self) -> str:
        return "zstd" if self.flags & FLAG_ZSTD else "zlib" if self.flags & FLAG_ZLIB else "none"


class RccArchive:
    """The file tree of one ``.rcc`` held in memory; :meth:`read` decompresses an entry."""

    def __init__(self, data: bytes, name: str = "<rcc>"):
        self.name = name
        self.data = data
        if len(data) < 20 or data[:4] != MAGIC:
            raise RccError(f"{name}: not a Qt resource file (no 'qres' header)")
        self.version, self.tree, self.payload, self.names = struct.unpack_from(">4I", data, 4)
        if not 1 <= self.version <= 3:
            raise RccError(f"{name}: rcc format version {self.version} is not supported (1–3 are)")
        self.node_size = 14 if self.version == 1 else 22
        self.entries = {e.path: e for e in self._walk(0, "")}

    def _node(self, index: int) -> tuple[str, int, int, int]:
        """(name, flags, a, b): for a directory a = child count, b = first child; for a file b = data offset."""
        at = self.tree + index * self.node_size
        if at + 14 > len(self.data):
            raise RccError(f"{self.name}: tree node {index} lies past the end of the file")
        name_offset, flags, a, b = struct.unpack_from(">IHII", self.data, at)
        length = struct.unpack_from(">H", self.data, self.names + name_offset)[0]
        start = self.names + name_offset + 6
        name = self.data[start:start + 2 * length].decode("utf-16-be")
        return name, flags, a, b

    def _walk(self, index: int, prefix: str) -> Iterator[RccEntry]:
        name, flags, a, b = self._node(index)
        path = f"{prefix}/{name}".lstrip("/") if index else ""
        if flags & FLAG_DIRECTORY:
            for child in range(b, b + a):
                yield from self._walk(child, path)
        else:
            yield RccEntry(path, flags, self.payload + b)

    def read(self, path: str) -> bytes:
        """The entry's bytes, decompressed."""
        entry = self.entries.get(path)
        if entry is None:
            raise KeyError(f"{self.name} has no entry {path!r}")
        size = struct.unpack_from(">I", self.data, entry.offset)[0]
        raw = self.data[entry.offset + 4:entry.offset + 4 + size]
        if entry.flags & FLAG_ZSTD:
            try:
                import zstandard
            except ImportError as error:
                raise RccError(f"{self.name}:{path} is zstd-compressed: pip install zstandard") from error
            return zstandard.ZstdDecompressor().decompress(raw)
        if entry.flags & FLAG_ZLIB:
            expected = struct.unpack_from(">I", raw)[0]
            out = zlib.decompress(raw[4:])
            if len(out) != expected:
                raise RccError(f"{self.name}:{path}: {len(out)} bytes decompressed, header says {expected}")
            return out
        return raw
