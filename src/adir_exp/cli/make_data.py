"""``adir-make-data``: assemble the embedded prior's photo corpus from registry packages (docs/prior.md).

    adir-make-data                      # fetch Debian wallpaper packages + wheel sample photos, split, write
    adir-make-data --no-debian          # only the photos inside the scikit-image / matplotlib wheels
    adir-make-data --debs DIR           # reuse .deb files already downloaded into DIR

The training split goes to ``$ADIR_HOME/corpus/train`` (what ``adir-train-prior`` reads); the retrieval
collection and the held-out test images go to the package's ``assets/corpus`` with the manifest.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from adir_exp.paths import ASSETS_DIR, adir_home, configure_environment


def main(argv: Sequence[str] | None = None) -> int:
    configure_environment()
    from adir_exp.prior.corpus import (
        DEBIAN_SOURCES,
        build_corpus,
        fetch_debian,
        python_candidates,
    )

    parser = argparse.ArgumentParser(prog="adir-make-data", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=adir_home() / "corpus", help="where the train split goes")
    parser.add_argument("--bundle-dir", type=Path, default=ASSETS_DIR / "corpus",
                        help="where the retrieval / test splits and the manifest go")
    parser.add_argument("--debs", type=Path, default=None, help="download/unpack .deb files here (default: temp dir)")
    parser.add_argument("--no-debian", action="store_true", help="skip the Debian packages")
    parser.add_argument("--train-short-side", type=int, default=384)
    parser.add_argument("--bundle-short-side", type=int, default=256)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="adir-debs-") as tmp:
        workdir = args.debs or Path(tmp)
        candidates = python_candidates()
        if not args.no_debian:
            for source in DEBIAN_SOURCES:
                candidates += fetch_debian(source, workdir)
        entries = build_corpus(candidates, args.cache_dir, args.bundle_dir,
                               train_short_side=args.train_short_side, bundle_short_side=args.bundle_short_side)
    counts = Counter(e.split for e in entries)
    print(f"{len(entries)} images: " + ", ".join(f"{s} {counts[s]}" for s in ("train", "retrieval", "test")))
    print(f"train split: {args.cache_dir / 'train'}\nretrieval/test + manifest: {args.bundle_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
