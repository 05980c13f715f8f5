"""``adir-bench``: a benchmark table (Hydra app) and ``adir-bench-merge``: one table from many shards."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from adir_exp.paths import CONF_DIR, PACKAGE_DIR, configure_environment

configure_environment()

import hydra  # noqa: E402
import yaml  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from adir_exp.benchmark.dataset import Tiles, expand_tiles, list_images, load_all, shard  # noqa: E402
from adir_exp.benchmark.results import ResultStore, read_rows, result_files, summarise, write_summary  # noqa: E402
from adir_exp.benchmark.runner import BenchmarkRunner, write_grid  # noqa: E402
from adir_exp.reconstruction import build_components, resolve_device  # noqa: E402
from adir_exp.reconstruction_sd import is_latent_diffusion, load_pipeline  # noqa: E402

log = logging.getLogger(__name__)
PAPER_RESULTS = PACKAGE_DIR / "benchmark" / "paper_results.yaml"


def paper_numbers(experiment: str | None) -> dict | None:
    """The paper's published values for this experiment, if the table is known."""
    if not experiment or not PAPER_RESULTS.exists():
        return None
    return (yaml.safe_load(PAPER_RESULTS.read_text()) or {}).get(experiment)


def summarise_directory(results_dir: Path, experiment: str | None) -> tuple[Path, Path, list[dict]]:
    rows = read_rows(result_files(results_dir))
    reserved = {"method", "image", "seed", "seconds"}
    metrics = sorted({k for r in rows for k in r if k not in reserved})
    table = summarise(rows, metrics, paper_numbers(experiment))
    csv_path, md_path = write_summary(table, metrics, results_dir)
    return csv_path, md_path, table


def log_to_logger(logger, results_dir: Path, table: list[dict], grids: list[Path], config: dict) -> None:
    """Send the summary and grids to the configured logger; local files are already written, so failures only warn."""
    try:
        logger.log_hyperparams(config)
        if hasattr(logger, "log_table") and table:
            columns = list(table[0])
            logger.log_table(key="summary", columns=columns, data=[[row[c] for c in columns] for row in table])
        if hasattr(logger, "log_image") and grids:
            logger.log_image(key="grids", images=[str(g) for g in grids], caption=[g.stem for g in grids])
        for row in table:
            logger.log_metrics({f"{row['method']}/{k}": v for k, v in row.items() if k.endswith("_mean")})
        logger.finalize("success")
        experiment = getattr(logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "finish"):
            experiment.finish()
    except Exception as error:  # a broken W&B must never cost the local results
        log.warning("logger %s failed (%s); local results in %s are complete", type(logger).__name__, error, results_dir)


def run(cfg: DictConfig) -> Path:
    bench = cfg.benchmark
    device = resolve_device(cfg.device)
    results_dir = Path(bench.results_dir)
    index, count = (int(v) for v in str(bench.shard).split("/"))
    store = ResultStore(results_dir / f"results-shard{index}of{count}.jsonl")

    images = list_images(bench.dataset, bench.first_n, bench.get("include"))
    tiles = Tiles(**bench.tiles) if bench.preprocess == "tiles" else None
    if tiles is not None:
        images = expand_tiles(images, tiles.per_image)
    images = shard(images, bench.shard)
    loaded, skipped = load_all(images, bench.size, bench.preprocess, tiles)
    for item, reason in skipped:
        store_path = results_dir / "skipped.txt"
        with open(store_path, "a") as handle:
            handle.write(f"{item.path}\t{reason}\n")
    log.info("%d images in shard %s, %d unreadable and skipped", len(loaded), bench.shard, len(skipped))

    if is_latent_diffusion(cfg.model):  # SD: the methods get the diffusers pipeline as the prior (sd_methods.py)
        prior, schedule = load_pipeline(cfg.model, device), None
        operator, noise = instantiate(cfg.task.operator), instantiate(cfg.task.noise)
    else:
        prior, schedule, operator, noise = build_components(cfg, device)
    methods = {name: instantiate(cfg.methods[name]) for name in bench.run}
    runner = BenchmarkRunner(
        methods, prior, schedule, operator, noise, instantiate(cfg.metrics), store, results_dir, cfg.seed, device
    )
    done = store.done()
    written = sum(runner.run_image(item, image, done) for item, image in loaded)
    log.info("wrote %d new rows (%d already done)", written, len(done))

    grids = [g for item, _ in loaded[: bench.grid_images] if (g := write_grid(results_dir, item.image_id, list(bench.run)))]
    experiment = OmegaConf.select(cfg, "experiment_name")
    csv_path, md_path, table = summarise_directory(results_dir, experiment)
    log.info("summary: %s\n%s", csv_path, md_path.read_text())
    if grids:
        log.info("grids (GT | y | %s): %s", " | ".join(bench.run), ", ".join(str(g) for g in grids))
    log_to_logger(instantiate(cfg.logger), results_dir, table, grids, OmegaConf.to_container(cfg, resolve=True))
    return results_dir


@hydra.main(config_path=str(CONF_DIR), config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


DEFAULT_PAIRS = (
    "gd:BASE", "adir_knn:gd", "adir_self:gd", "adir_random:gd", "adir_knn:adir_random", "dps:gd", "adir_knn:BASE",
)


def report() -> None:
    """Method means and paired-bootstrap differences of one or more results directories, as Markdown + a plot."""
    from adir_exp.benchmark.compare import method_means, paired_bootstrap, photo_of, plot_differences

    parser = argparse.ArgumentParser(description=report.__doc__)
    parser.add_argument("results_dirs", type=Path, nargs="+", help="adir-bench results directories")
    parser.add_argument("--out", type=Path, required=True, help="writes report.md and differences.png here")
    parser.add_argument("--metrics", nargs="+", default=["lpips", "psnr", "niqe"])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS),
                        help="method:reference pairs; BASE = the no-prior baseline (bicubic or measurement)")
    parser.add_argument("--resamples", type=int, default=10_000)
    args = parser.parse_args()

    lines, plotted = [], []
    for results_dir in args.results_dirs:
        rows = read_rows(result_files(results_dir))
        means = method_means(rows, [*args.metrics, "ssim"])
        base = next((m for m in ("bicubic", "measurement", "pseudo_inverse") if m in means), None)
        lines += [f"### {results_dir.name}", "", "| method | n | " + " | ".join([*args.metrics, "ssim"]) +
                  " | s/image |", "|---" * (len(args.metrics) + 4) + "|"]
        for method, entry in means.items():
            values = " | ".join(f"{entry[m]:.4f}" for m in [*args.metrics, "ssim"])
            lines.append(f"| {method} | {entry['n']} | {values} | {entry['seconds']:.1f} |")
        lines += ["", "Paired differences (method − reference), mean and 95% bootstrap CI over images; "
                  "in brackets the CI when whole photos are resampled (tiles of a photo are not independent).", "",
                  "| method − reference | metric | n | mean Δ | 95% CI (images) | 95% CI (photos) | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for pair in args.pairs:
            method, reference = pair.replace("BASE", base or "BASE").split(":")
            if method not in means or reference not in means:
                continue
            for metric in args.metrics:
                d = paired_bootstrap(rows, method, reference, metric, args.resamples)
                c = paired_bootstrap(rows, method, reference, metric, args.resamples, group=photo_of)
                plotted.append((results_dir.name, d))
                lines.append(f"| {method} − {reference} | {metric} | {d.n} | {d.mean:+.4f} | "
                             f"[{d.low:+.4f}, {d.high:+.4f}] | [{c.low:+.4f}, {c.high:+.4f}] | {d.verdict} |")
        lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_differences(plotted, args.metrics, args.out / "differences.png")
    (args.out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))


def merge() -> None:
    """Build the summary of a results directory from every shard's rows."""
    parser = argparse.ArgumentParser(description=merge.__doc__)
    parser.add_argument("results_dir", type=Path)
    parser.add_argument("--experiment", default=None, help="experiment name, to put the paper's values beside")
    args = parser.parse_args()
    _, md_path, _ = summarise_directory(args.results_dir, args.experiment)
    print(md_path.read_text())


if __name__ == "__main__":
    main()
