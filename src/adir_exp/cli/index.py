"""``adir-index``: build a retrieval index over an image collection, query it, measure its robustness.

    adir-index build SOURCE -o INDEX_DIR [--encoder efficientnet_lite0] [--shard-size 10000] ...
    adir-index query -i INDEX_DIR (--image Y.png [--ground-truth X.png] | --text "a photo of a cat") [-k 20]
    adir-index robustness -i INDEX_DIR --images DIR --task sr4 --task colorization [-k 1 5 10 20] -o OUT_DIR

SOURCE is an image folder, a .txt/.lst file list, or webdataset .tar shards (file, glob or {000..099} range).
``--encoder`` names a config in conf/retrieval/encoder/ (or a YAML path); ``--encoder-set key=value`` overrides
its fields, e.g. ``--encoder open_clip --encoder-set checkpoint=/weights/ViT-L-14.pt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from adir_exp.cli.config import CONF_DIR
from adir_exp.paths import configure_environment
from adir_exp.retrieval.index import IndexConfig

ENCODER_DIR = CONF_DIR / "retrieval" / "encoder"
TASK_DIR = CONF_DIR / "task"


def positive_int(text: str) -> int:
    """argparse type for counts such as -k: refused with the flag's name instead of a traceback later."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _config(name: str, folder: Path, kind: str):
    from omegaconf import OmegaConf

    path = Path(name)
    if not path.is_file():
        path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise FileNotFoundError(f"no {kind} config {name!r} (a YAML path or one of {known} in {folder})")
    return OmegaConf.load(path)


def _encoder(args: argparse.Namespace):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = OmegaConf.merge(_config(args.encoder, ENCODER_DIR, "encoder"), OmegaConf.from_dotlist(args.encoder_set))
    try:
        return instantiate(config)
    except InstantiationException as error:
        # Hydra wraps the encoder's own error (missing weights, a refused checkpoint); report that one
        raise error.__cause__ or error from None


def _retriever(args: argparse.Namespace, k: int):
    from adir_exp.retrieval.query import LeakageGuard, Retriever

    guard = LeakageGuard(enabled=not args.no_guard, threshold=args.threshold)
    return Retriever(
        args.index, _encoder(args), k=k, leakage_guard=guard, device=args.device, index_device=args.index_device
    )


def _given(args: argparse.Namespace, names: dict[str, str]) -> dict:
    """The flags the user set (argparse default None), renamed to config fields; the rest keep config defaults."""
    return {field: getattr(args, flag) for flag, field in names.items() if getattr(args, flag) is not None}


def _build(args: argparse.Namespace) -> int:
    from adir_exp.retrieval.build import build_index
    from adir_exp.retrieval.embedding import EmbedConfig

    if args.devices is not None and args.devices.isdigit():
        args.devices = int(args.devices)
    embed = EmbedConfig(
        progress=not args.no_progress,
        **_given(args, {f: f for f in ("batch_size", "accelerator", "devices", "strategy", "precision")}),
        **_given(args, {"workers": "num_workers"}),
    )
    index_fields = ("nlist", "m", "nbits", "nprobe", "refine", "train_size")
    index = IndexConfig(**_given(args, {"index_kind": "kind", **{f: f for f in index_fields}}))
    meta = build_index(args.source, args.out, _encoder(args), args.shard_size, embed, index, args.overwrite)
    if meta is not None:
        print(f"{meta['count']} images indexed ({meta['kind']}), {meta['skipped']} unreadable -> {args.out}")
    return 0


def _query(args: argparse.Namespace) -> int:
    from adir_exp.data.images import load_image
    from adir_exp.retrieval.leakage import content_digest

    retriever = _retriever(args, args.k)
    if args.text is not None:
        neighbours = retriever.query_text(args.text, args.k)
    else:
        truth = load_image(args.ground_truth) if args.ground_truth else None
        source = content_digest(args.ground_truth) if args.ground_truth else None
        neighbours = retriever.query_image(load_image(args.image), args.k, ground_truth=truth, source=source)
    for rank, neighbour in enumerate(neighbours, 1):
        print(f"{rank:>3}  {neighbour.distance:.4f}  {neighbour.id}  {neighbour.path}")
    for neighbour in neighbours.excluded:
        why = neighbour.exclusion
        print(f"excluded  {neighbour.id}  ({why.reason} match with the ground truth, score {why.score:.4f})")
    if args.json is not None:
        payload = {
            "neighbours": [asdict(n) for n in neighbours],
            "excluded": [asdict(n) for n in neighbours.excluded],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


def _robustness(args: argparse.Namespace) -> int:
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from adir_exp.data.images import IMAGE_SUFFIXES, load_image
    from adir_exp.retrieval.robustness import neighbour_overlap, plot, write_csv

    paths = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
    if not paths:
        raise FileNotFoundError(f"no images under {args.images}")

    def square(path: Path):
        """Operators expect the working resolution: shortest side to --size, centre crop."""
        x = load_image(path)
        h, w = x.shape[-2:]
        scale = args.size / min(h, w)
        x = F.interpolate(
            x,
            size=(max(args.size, round(h * scale)), max(args.size, round(w * scale))),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        ).clamp(0, 1)
        top, left = (x.shape[-2] - args.size) // 2, (x.shape[-1] - args.size) // 2
        return x[..., top : top + args.size, left : left + args.size]

    degradations = {}
    for task in args.task:
        operator = instantiate(_config(task, TASK_DIR, "task").physics.operator)
        degradations[Path(task).stem] = getattr(operator, "A", operator)  # an operator's A, or any callable
    rows = neighbour_overlap(
        _retriever(args, max(args.k)), (square(p) for p in paths), degradations, args.k, not args.no_guard
    )
    out = Path(args.out)
    print(f"{'degradation':<16}{'K':>5}{'recall':>9}{'std':>8}")
    for row in rows:
        print(f"{row.degradation:<16}{row.k:>5}{row.recall_mean:>9.3f}{row.recall_std:>8.3f}")
    print(f"-> {write_csv(rows, out / 'robustness.csv')}, {plot(rows, out / 'robustness.png')}")
    return 0


def _add_encoder_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", default="efficientnet_lite0", help="conf/retrieval/encoder/NAME.yaml or a path")
    parser.add_argument(
        "--encoder-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the encoder config (repeatable)",
    )


def _add_query_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--index", required=True, help="index directory written by `adir-index build`")
    parser.add_argument("--device", default="cpu", help="device of the encoder (cpu, cuda)")
    parser.add_argument(
        "--index-device", default="cpu", help="where FAISS searches: cpu, cuda or cuda:N (GPU: the [gpu] extra)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.95,
        help="leakage guard: cosine to the ground truth at or above which a neighbour is dropped",
    )
    parser.add_argument("--no-guard", action="store_true", help="disable the leakage guard")
    _add_encoder_args(parser)


def main(argv: Sequence[str] | None = None) -> int:
    configure_environment()  # before open_clip / huggingface_hub are imported
    parser = argparse.ArgumentParser(prog="adir-index", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="embed a collection and write a FAISS index (resumable)")
    build.add_argument("source", help="image folder, .txt/.lst file list, or .tar shards (file, glob, {a..b})")
    build.add_argument("-o", "--out", required=True, help="index directory")
    _add_encoder_args(build)
    build.add_argument("--shard-size", type=int, default=10_000, help="images per embedding shard (file sources)")
    defaults = IndexConfig()
    build.add_argument("--batch-size", type=int, help="images per batch (default 64)")
    build.add_argument("--workers", type=int, help="DataLoader workers per device (default 2)")
    build.add_argument("--accelerator", help="Lightning accelerator (default auto: GPU if any)")
    build.add_argument("--devices", help="number of devices, DDP when > 1 (default auto)")
    build.add_argument("--strategy", help="Lightning strategy, e.g. ddp (default auto)")
    build.add_argument("--precision", help="Lightning precision, e.g. 16-mixed on GPU (default 32-true)")
    build.add_argument(
        "--index-kind",
        choices=("auto", "flat", "ivfpq"),
        help=f"default auto: exact below {defaults.ivfpq_min_size} images, IVF-PQ from there",
    )
    build.add_argument("--nlist", type=int, help=f"IVF-PQ inverted lists (default {defaults.nlist})")
    build.add_argument(
        "--m", type=int, help=f"IVF-PQ sub-quantizers, divides the embedding size (default {defaults.m})"
    )
    build.add_argument("--nbits", type=int, help=f"IVF-PQ bits per code (default {defaults.nbits})")
    build.add_argument("--nprobe", type=int, help=f"IVF-PQ lists visited per query (default {defaults.nprobe})")
    build.add_argument(
        "--refine", type=int, help=f"IVF-PQ candidates per neighbour re-ranked exactly (default {defaults.refine})"
    )
    build.add_argument("--train-size", type=int, help=f"IVF-PQ training subset (default {defaults.train_size})")
    build.add_argument("--overwrite", action="store_true", help="discard a previous build in the output directory")
    build.add_argument("--no-progress", action="store_true")

    query = commands.add_parser("query", help="nearest neighbours of an image or a text")
    _add_query_args(query)
    target = query.add_mutually_exclusive_group(required=True)
    target.add_argument("--image", help="the (degraded) query image y")
    target.add_argument("--text", help="a text prompt (encoders with a text tower)")
    query.add_argument("--ground-truth", help="clean image: turns on the leakage guard")
    query.add_argument("-k", type=positive_int, default=20)
    query.add_argument("--json", help="also write the neighbours to this JSON file")

    robustness = commands.add_parser("robustness", help="overlap of the neighbours of x and A(x) (paper Fig. 21)")
    _add_query_args(robustness)
    robustness.add_argument("--images", required=True, help="folder of clean test images")
    robustness.add_argument(
        "--task",
        action="append",
        required=True,
        help="conf/task/NAME.yaml (or a path) whose `physics.operator` is the degradation (repeatable)",
    )
    robustness.add_argument("-k", type=positive_int, nargs="+", default=[1, 5, 10, 20], help="values of K")
    robustness.add_argument("--size", type=int, default=256, help="working resolution the operators expect")
    robustness.add_argument("--limit", type=int, default=None, help="use at most this many images")
    robustness.add_argument("-o", "--out", required=True, help="folder for robustness.csv and robustness.png")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from adir_exp.cli.console import quiet_console

    quiet_console()
    from adir_exp.data.images import ImageReadError
    from adir_exp.retrieval.collection import SourceError
    from adir_exp.retrieval.encoders import TextNotSupportedError
    from adir_exp.retrieval.index import RetrievalIndexError

    handlers = {"build": _build, "query": _query, "robustness": _robustness}
    try:
        return handlers[args.command](args)
    except (SourceError, RetrievalIndexError, TextNotSupportedError, ImageReadError, FileNotFoundError,
            ValueError) as error:
        print(f"adir-index {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
