"""``adir-bench``: a results table, methods × the first N images of a folder (conf/bench.yaml);
``adir-bench-merge``: one table from every shard's rows; ``adir-bench-report``: paired differences with CIs.

    adir-bench experiment=table2_gd_sr4 benchmark.dataset=/data/DIV2K_valid_HR
    adir-bench -m hydra/launcher=submitit_local benchmark.shard=0/2,1/2 ...   # then adir-bench-merge <results dir>
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from adir_exp.cli.config import (
    CONFIG_PATH,
    ConfigError,
    command_line,
    reported_as,
    resolved,
    validate,
)
from adir_exp.cli.console import quiet_console
from adir_exp.paths import configure_environment

configure_environment()

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> list[dict]:
    """Run the benchmark as configured; returns the summary table of this configuration."""
    from hydra.core.hydra_config import HydraConfig

    from adir_exp.cli.build_and_run import build, execute, publish
    from adir_exp.evaluation.benchmark_images import (
        DatasetError,
        Tiles,
        expand_tiles,
        list_images,
        load_all,
        parse_shard,
        shard,
    )
    from adir_exp.evaluation.results import ResultsError, ResultStore, check_writable
    from adir_exp.retrieval.leakage import content_digest  # what a row's "source" holds

    quiet_console()
    validate(cfg)
    bench = cfg.benchmark
    index, count = parse_shard(bench.shard)
    store_dir = Path(bench.results_dir)
    try:
        check_writable(store_dir)
    except ResultsError as error:
        raise ConfigError(f"benchmark.results_dir: {error}") from error
    try:
        items = list_images(bench.dataset, bench.first_n, bench.include)
    except (DatasetError, ValueError) as error:
        raise ConfigError(f"benchmark.dataset: {error}") from error
    tiles = Tiles(**bench.tiles) if bench.preprocess == "tiles" else None
    if tiles is not None:
        items = expand_tiles(items, tiles.per_image)
    loaded, skipped = load_all(shard(items, index, count), bench.size, bench.preprocess, tiles)
    if not loaded:
        raise ConfigError(f"benchmark.dataset: none of the {len(skipped)} image(s) of shard {bench.shard} is readable")
    preprocessing = {"dataset": str(bench.dataset), "size": bench.size, "preprocess": bench.preprocess,
                     "tiles": resolved(bench.tiles) if tiles else None}
    experiment = build(cfg, preprocessing, {tuple(image.shape) for _, image in loaded}, "benchmark.size")
    for item, reason in skipped:
        ResultStore(store_dir, (index, count)).record_skipped(item.path, reason)
    log.info("%d images in shard %s, %d skipped (unreadable or near-constant; skipped.txt says which)",
             len(loaded), bench.shard, len(skipped))
    images = [(item.image_id, content_digest(item.path), image) for item, image in loaded]
    report_dir = Path(HydraConfig.get().runtime.output_dir)
    report = execute(experiment, images, store_dir, report_dir, (index, count),
                     save_adapters=bench.save_adapters, grid_images=bench.grid_images)
    publish(experiment, report)
    return report.table


def optimized_value(table: list[dict], choice: str | None) -> float | None:
    """The summary mean ``choice`` names ("<method>/<metric>"), what a Hydra sweeper (Optuna) optimises."""
    if not choice:
        return None
    method, _, metric = str(choice).partition("/")
    row = next((r for r in table if r["method"] == method), None)
    if row is None or f"{metric}_mean" not in row:
        known = ", ".join(f"{r['method']}/{k[:-5]}" for r in table if r["n"] for k in r if k.endswith("_mean"))
        raise ConfigError(f"optimized_metric={choice!r} is not in this run's summary; choose one of: {known}")
    return float(row[f"{metric}_mean"])


@hydra.main(config_path=CONFIG_PATH, config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    with reported_as("adir-bench", rerun=command_line("adir-bench")):  # rows are keyed: the same command resumes
        return optimized_value(run(cfg), cfg.get("optimized_metric"))


DEFAULT_PAIRS = (
    "gd:BASE", "adir_knn:gd", "adir_self:gd", "adir_random:gd", "adir_knn:adir_random", "adir_oracle:adir_knn",
    "dps:gd", "ddrm:gd", "adir_knn:BASE", "adir_domain_knn:adir_knn", "adir_bank:gd", "adir_bank_tuned:gd",
    "adir_bank:adir_knn",
)


def report() -> None:
    """Method means and paired-bootstrap differences of one or more results directories, as Markdown + a plot."""
    from adir_exp.evaluation.report import write_report

    parser = argparse.ArgumentParser(prog="adir-bench-report", description=report.__doc__)
    parser.add_argument("results_dirs", type=Path, nargs="+", help="adir-bench results directories")
    parser.add_argument("--out", type=Path, required=True, help="writes report.md and differences.png here")
    parser.add_argument("--metrics", nargs="+", default=["lpips", "psnr", "niqe"])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS),
                        help="method:reference pairs; BASE = the no-prior baseline (bicubic or measurement)")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--domain", default=None,
                        help="also report each adapting method's retrieval precision: the share of its adaptation "
                             "images from this collection folder (domain-shift study)")
    parser.add_argument("--rename", nargs="+", default=[], metavar="LABEL=NAME",
                        help="name the rows of one setting of a method, e.g. adir_bank@1a2b3c4d=adir_bank_c8 (a "
                             "method with rows of several settings is labelled <method>@<key8>; a run's keys.json "
                             "says which key is which)")
    args = parser.parse_args()
    from adir_exp.evaluation.results import ResultsError

    with reported_as("adir-bench-report", ResultsError):
        renames = dict(item.split("=", 1) for item in args.rename if "=" in item)
        if len(renames) != len(args.rename):
            raise ResultsError(f"--rename takes LABEL=NAME, got {' '.join(args.rename)}")
        print(write_report(args.results_dirs, args.out, args.metrics, args.pairs, args.resamples, args.domain,
                           renames))


def curve() -> None:
    """Cost/benefit of adaptation: Δmetric (method − reference) against adaptation iterations, one line per job of a
    sweep (labelled by the swept setting), from the jobs' rows; curve.md and curve.png."""
    from adir_exp.evaluation.report import iteration_curve, plot_curve
    from adir_exp.evaluation.results import ResultsError, existing_rows

    parser = argparse.ArgumentParser(prog="adir-bench-curve", description=curve.__doc__)
    parser.add_argument("sweeps", type=Path, nargs="+", help="adir-bench run or sweep directories (with keys.json)")
    parser.add_argument("--out", type=Path, required=True, help="writes curve.md and curve.png here")
    parser.add_argument("--method", default="adir_knn")
    parser.add_argument("--reference", default="gd")
    parser.add_argument("--by", default="adaptation.lr", help="the setting that labels each job's line")
    parser.add_argument("--metrics", nargs="+", default=["lpips", "psnr"])
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()
    with reported_as("adir-bench-curve", ResultsError):
        jobs = sorted(path.parent for sweep in args.sweeps for path in sweep.rglob("keys.json"))
        if not jobs:
            raise ResultsError(f"no adir-bench report (keys.json) under {', '.join(map(str, args.sweeps))}")
        points, lines = [], ["| " + args.by + " | iterations | metric | n | mean Δ | 95% CI |", "|---|---|---|---|---|---|"]
        for job in jobs:
            config = OmegaConf.load(job / ".hydra" / "config.yaml")
            label = f"{args.by}={OmegaConf.select(config, args.by)}"
            record = json.loads((job / "keys.json").read_text())
            keys = {record["keys"][m] for m in (args.method, args.reference) if m in record["keys"]}
            rows = [r for r in existing_rows(Path(record["results_dir"])) if r.get("key", "").split("@")[0] in keys]
            for metric in args.metrics:
                line = iteration_curve(rows, args.method, args.reference, metric,
                                       int(OmegaConf.select(config, "adaptation.iterations")), label, args.resamples)
                points += line
                lines += [f"| {label} | {p.iterations} | {metric} | {p.difference.n} | {p.difference.mean:+.4f} | "
                          f"[{p.difference.low:+.4f}, {p.difference.high:+.4f}] |" for p in line]
        args.out.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        (args.out / "curve.md").write_text(text)
        plot_curve(points, args.metrics, args.out / "curve.png")
        print(text + f"\n{args.out / 'curve.png'}")


def merge() -> None:
    """Build the summary of a results directory from every shard's rows."""
    from adir_exp.evaluation.results import ResultsError, merge_directory

    parser = argparse.ArgumentParser(prog="adir-bench-merge", description=merge.__doc__)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--experiment", default=None, help="experiment name, to put the paper's values beside")
    args = parser.parse_args()
    with reported_as("adir-bench-merge", ResultsError):
        print(merge_directory(args.results_dir, args.experiment).read_text())


if __name__ == "__main__":
    main()
