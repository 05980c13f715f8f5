"""Content hashes of weight files, computed once per file version: result keys and provisioning both need them, and
a 500 MB checkpoint should not be read again for every run of a sweep in one process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_known: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, cached by path, inode, size and modification/change times: a file
    replaced or rewritten in place is hashed again."""
    resolved = os.path.realpath(path)
    stat = os.stat(resolved)
    version = (resolved, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if version not in _known:
        digest = hashlib.sha256()
        with open(resolved, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _known[version] = digest.hexdigest()
    return _known[version]
