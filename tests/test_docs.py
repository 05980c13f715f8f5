"""Every repository path the README, docs/*.md and experiments/*.md mention exists (and those in the comments of
the configs and of benchmarks/*.sh), and every relative link resolves: a renamed file or folder cannot leave a
stale reference behind.

A path is a token with a ``/`` whose first part is a top-level entry of the repository, a folder of the package
(``adaptation/fit.py``) or a config group (``experiment/demo.yaml``); it may be written from the repository root,
the package, its conf/ or the document's own folder. What runs create (``outputs/``), placeholders (``<id>``,
``…``, ``$ADIR_HOME``, ``NAME``), paths outside the repository (absolute, ``../shared``) and other projects' files
are not checked; a glob must match something."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "adir_exp"
CONF = PACKAGE / "conf"
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")),
             *sorted((REPO_ROOT / "experiments").glob("*.md"))]
COMMENTED = [*sorted(PACKAGE.rglob("*.yaml")), *sorted((REPO_ROOT / "benchmarks").glob("*.sh"))]
TOKEN = re.compile(r"[\w.\-/<>…*{}$~]+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PLACEHOLDER = re.compile(r"[<>…{}$~]|\bNAME\b|NNN")
CREATED_BY_RUNS = ("outputs/",)
BASES = (REPO_ROOT, PACKAGE, CONF)


def first_parts(base: Path) -> set[str]:
    """Names a path from ``base`` can start with (its entries)."""
    return {p.name for p in base.iterdir() if not p.name.startswith((".", "__"))}


def exists(path: str, bases: list[Path]) -> bool:
    if "*" in path:
        return any(any(base.glob(path.rstrip("/"))) for base in bases)
    return any((base / path).exists() for base in bases)


def mentioned_paths(text: str) -> set[str]:
    known, groups = first_parts(REPO_ROOT) | first_parts(PACKAGE), first_parts(CONF)
    paths = set()
    for token in TOKEN.findall(text):
        token = token.rstrip(".,")
        if "/" not in token or token.startswith(("/", "../", "./")) or PLACEHOLDER.search(token):
            continue
        first, last = token.split("/")[0], token.split("/")[-1]
        # a config group's name starts other things too (`trainer/global_step`): then only a file counts
        if token.startswith(CREATED_BY_RUNS) or not (first in known or (first in groups and "." in last)):
            continue
        paths.add(token)
    return paths


def test_a_path_token_is_found_and_placeholders_are_not() -> None:
    text = ("see `adaptation/fit.py`, benchmarks/gpu_session.sh, [x](docs/architecture.md), outputs/run/a.png, "
            "images/<id>/x.png, $ADIR_HOME/corpus, /data/DIV2K, ../shared/paper/, configs/diffusion_config.yaml, "
            "trainer/global_step, experiment/demo.yaml")
    assert mentioned_paths(text) == {"adaptation/fit.py", "benchmarks/gpu_session.sh", "docs/architecture.md",
                                     "experiment/demo.yaml"}
    assert not exists("adaptation/no_such_module.py", list(BASES))


@pytest.mark.parametrize("document", DOCUMENTS + COMMENTED, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_mentioned_repository_path_exists(document: Path) -> None:
    text = document.read_text()
    bases = [*BASES, document.parent]
    missing = sorted(path for path in mentioned_paths(text) if not exists(path, bases))
    assert missing == [], f"{document.relative_to(REPO_ROOT)} mentions paths that do not exist"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    targets = {link.split("#")[0] for link in LINK.findall(document.read_text()) if "://" not in link}
    missing = sorted(t for t in targets if t and not (document.parent / t).exists())
    assert missing == [], f"{document.relative_to(REPO_ROOT)} links to files that do not exist"
