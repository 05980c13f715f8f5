"""``adir-make-data``: assemble the photo corpus and the domain-shift study's images from registry packages.

    adir-make-data                      # Debian packages + wheel sample photos → the prior's corpus
    adir-make-data --domains            # … and the domain-shift sets (astronomy photos, typeset pages)
    adir-make-data --no-debian          # only the photos inside the scikit-image / matplotlib / sklearn wheels
    adir-make-data --debs DIR           # keep downloads and unpacked packages in DIR, reuse them next time

Every split of the corpus goes to ``$ADIR_HOME/corpus/{train,retrieval,test}`` (``train`` is what
``adir-train-prior`` reads); the retrieval and test images of the originally bundled sources also go to the
package's ``assets/corpus`` with its manifest (docs/prior.md). ``--domains`` writes
``$ADIR_HOME/domain_shift/{collection,test/<domain>}`` and its manifest (experiments/domain_shift/README.md).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from adir_exp.paths import ASSETS_DIR, adir_home, configure_environment


def _table(rows: dict[str, dict[str, int]], columns: Sequence[str]) -> str:
    """Plain-text table: one row per key, one column per split, and a total row."""
    width = max(len(name) for name in [*rows, "total"])
    lines = [f"{'':{width}}  " + "  ".join(f"{c:>10}" for c in [*columns, "all"])]
    for name, counts in [*rows.items(), ("total", {c: sum(r[c] for r in rows.values()) for c in columns})]:
        values = [counts[c] for c in columns]
        lines.append(f"{name:{width}}  " + "  ".join(f"{v:>10}" for v in [*values, sum(values)]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    configure_environment()
    from adir_exp.corpus.photos import (
        BUNDLED_SOURCES,
        DEBIAN_SOURCES,
        MORE_DEBIAN_SOURCES,
        SPLITS,
        build_corpus,
        fetch_debian,
        python_candidates,
    )

    parser = argparse.ArgumentParser(prog="adir-make-data", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=adir_home() / "corpus",
                        help="where the corpus' splits and full manifest go")
    parser.add_argument("--bundle-dir", type=Path, default=ASSETS_DIR / "corpus",
                        help="where the bundled sources' retrieval / test images and their manifest go")
    parser.add_argument("--domains", action="store_true",
                        help="also build the domain-shift sets (stellarium-data, r-doc-pdf)")
    parser.add_argument("--domain-dir", type=Path, default=adir_home() / "domain_shift",
                        help="where the domain-shift collection, test sets and manifest go")
    parser.add_argument("--debs", type=Path, default=None, help="download/unpack .deb files here (default: temp dir)")
    parser.add_argument("--no-debian", action="store_true", help="skip the Debian packages")
    parser.add_argument("--train-short-side", type=int, default=384)
    parser.add_argument("--bundle-short-side", type=int, default=256)
    args = parser.parse_args(argv)
    if args.domains and args.no_debian:
        parser.error("--domains needs the Debian packages (stellarium-data, r-doc-pdf); drop --no-debian")

    with tempfile.TemporaryDirectory(prefix="adir-debs-") as tmp:
        workdir = args.debs or Path(tmp)
        candidates = python_candidates()
        for source, count in sorted(Counter((c.source, c.version) for c in candidates).items()):
            print(f"{source[0]} {source[1]}: {count} photos", flush=True)
        if not args.no_debian:
            for debian in DEBIAN_SOURCES + MORE_DEBIAN_SOURCES:
                found = fetch_debian(debian, workdir)
                print(f"debian:{debian.package} {found[0].version}: {len(found)} photos", flush=True)
                candidates += found
        entries = build_corpus(candidates, args.cache_dir, args.bundle_dir, train_short_side=args.train_short_side,
                               bundle_short_side=args.bundle_short_side, bundle_sources=BUNDLED_SOURCES)
        if args.domains:
            from adir_exp.corpus import domain_shift
            from adir_exp.corpus.pages import page_candidates

            astronomy = fetch_debian(domain_shift.ASTRONOMY_SOURCE, workdir)
            print(f"debian:stellarium-data {astronomy[0].version}: {len(astronomy)} photos", flush=True)
            pdfs = fetch_debian(domain_shift.DOCUMENT_SOURCE, workdir)
            documents = page_candidates(pdfs, workdir / "r-doc-pdf-pages")
            print(f"debian:r-doc-pdf {pdfs[0].version}: {len(documents)} pages from {len(pdfs)} PDFs", flush=True)
            study = domain_shift.build_domain_shift(entries, args.cache_dir,
                                                    {"astronomy": astronomy, "documents": documents},
                                                    args.domain_dir)

    bundled = Counter(e.split for e in entries if e.source in BUNDLED_SOURCES)
    print("\nprior corpus (natural photos), images per split:")
    print(_table({"bundled sources": {s: bundled[s] for s in SPLITS},
                  "added sources": {s: sum(e.split == s for e in entries) - bundled[s] for s in SPLITS}}, SPLITS))
    print(f"corpus: {args.cache_dir} (train: {args.cache_dir / 'train'})\nbundle: {args.bundle_dir}")
    if args.domains:
        print("\ndomain-shift study, images per domain and split:")
        print(_table(domain_shift.split_counts(study), (*domain_shift.SPLITS, domain_shift.RESERVE)))
        print(f"study: {args.domain_dir} (collection/, test/<domain>/, manifest.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
