"""The Qt resource (.rcc) reader on files built here byte by byte, per the format in rcc.py's docstring."""

from __future__ import annotations

import importlib.util
import struct
import zlib

import pytest

from adir_exp.corpus.rcc import (
    FLAG_DIRECTORY,
    FLAG_ZLIB,
    FLAG_ZSTD,
    RccArchive,
    RccError,
)


def build_rcc(files: dict[str, tuple[bytes, int]], version: int = 3) -> bytes:
    """A resource file holding ``files`` (path → (stored bytes, flags)); ``FLAG_ZLIB`` entries are compressed.

    Layout as rcc writes it: header, data, names, then the tree, whose nodes are laid out breadth first with
    each directory's children contiguous.
    """
    tree: dict = {}
    for path in files:
        node = tree
        *folders, name = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = path
    names, name_offsets, data = bytearray(), {}, bytearray()

    def name_offset(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_offsets[name]

    nodes: list[bytes | None] = [None]
    queue = [(0, "", tree)]
    while queue:
        index, name, children = queue.pop(0)
        first = len(nodes)
        nodes[index] = struct.pack(">IHII", name_offset(name), FLAG_DIRECTORY, len(children), first)
        nodes.extend([None] * len(children))
        for k, (child, value) in enumerate(sorted(children.items())):
            if isinstance(value, dict):
                queue.append((first + k, child, value))
                continue
            content, flags = files[value]
            stored = struct.pack(">I", len(content)) + zlib.compress(content) if flags & FLAG_ZLIB else content
            nodes[first + k] = struct.pack(">IHHHI", name_offset(child), flags, 0, 0, len(data))
            data.extend(struct.pack(">I", len(stored)) + stored)
    if version >= 2:
        nodes = [node + struct.pack(">Q", 0) for node in nodes]
    header = 24 if version >= 3 else 20
    data_offset, names_offset = header, header + len(data)
    tree_offset = names_offset + len(names)
    head = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        head += struct.pack(">I", FLAG_ZLIB)
    return head + bytes(data) + bytes(names) + b"".join(nodes)


FILES = {
    "app/img/photo.webp": (b"RIFF-not-really-a-webp" * 10, FLAG_ZLIB),
    "app/img/raw.png": (b"\x89PNG\r\n\x1a\n plain bytes", 0),
    "app/README": ("Copyright: Ünïcode ©\n".encode(), FLAG_ZLIB),
    "top.txt": (b"", 0),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reads_uncompressed_and_zlib_entries_at_every_version(version):
    archive = RccArchive(build_rcc(FILES, version))
    assert sorted(archive.entries) == sorted(FILES)
    for path, (content, flags) in FILES.items():
        assert archive.read(path) == content
        assert archive.entries[path].compression == ("zlib" if flags & FLAG_ZLIB else "none")


def test_errors_name_the_problem():
    with pytest.raises(RccError, match="qres"):
        RccArchive(b"RIFF" + bytes(40), "x.rcc")
    with pytest.raises(RccError, match="version 9"):
        RccArchive(b"qres" + struct.pack(">IIII", 9, 0, 0, 0) + bytes(8), "x.rcc")
    archive = RccArchive(build_rcc(FILES))
    with pytest.raises(KeyError, match="app/missing.png"):
        archive.read("app/missing.png")


def test_zlib_size_header_is_checked():
    blob = bytearray(build_rcc({"a.bin": (b"abc" * 50, FLAG_ZLIB)}))
    at = blob.index(zlib.compress(b"abc" * 50)) - 4  # the qCompress length prefix
    blob[at:at + 4] = struct.pack(">I", 7)
    with pytest.raises(RccError, match="header says 7"):
        RccArchive(bytes(blob)).read("a.bin")


def test_zstd_entries_need_zstandard():
    archive = RccArchive(build_rcc({"a.bin": (b"\x28\xb5\x2f\xfd not a frame", FLAG_ZSTD)}))
    assert archive.entries["a.bin"].compression == "zstd"
    if importlib.util.find_spec("zstandard") is None:
        with pytest.raises(RccError, match="pip install zstandard"):
            archive.read("a.bin")
