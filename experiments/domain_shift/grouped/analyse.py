"""The domain-shift study's tables on the source-grouped splits (docs/domain_shift.md), from the rows in
outputs/bench/: one adir-bench-report per experiment, each setting's rows named after the overrides of the run
that made them (outputs/bench_runs/*/keys.json), the bank's share of ADIR-KNN's gain with a photo-level
bootstrap CI, the seed spread; headline.md and summary.json. Usage: python analyse.py [OUT_DIR] (default: here)."""
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
METRICS = ["lpips", "lpips_vgg", "dists", "psnr", "ssim", "niqe"]

def runs():
    """(overrides, keys) of every adir-bench run of today."""
    for keys in sorted((ROOT / "outputs/bench_runs").rglob("keys.json")):
        over = yaml.safe_load((keys.parent / ".hydra/overrides.yaml").read_text())
        yield over, json.loads(keys.read_text())["keys"]

def names_for(experiment):
    """label (method@key8) → readable name, for settings other than the experiment's defaults."""
    names = {}
    for over, keys in runs():
        if f"experiment={experiment}" not in over:
            continue
        extra = [o for o in over if not o.startswith(("experiment=", "method=", "benchmark.shard=", "benchmark.include"))]
        for method, key in keys.items():
            tag = None
            if any(o.startswith("bank.num_neighbourhoods=") for o in extra) and method.startswith("adir_bank"):
                c = next(o.split("=")[1] for o in extra if o.startswith("bank.num_neighbourhoods="))
                tag = f"{method}_c{c}" if method == "adir_bank" else f"{method}_c{c}"
            elif "model.objective.lpips_weight=0" in extra:
                tag = f"{method}_no_lpips"
            elif "adaptation.targets=adm_conv" in extra:
                tag = f"{method}_adm_conv"
            elif any(o.startswith("seed=") for o in extra):
                tag = f"{method}_seed{next(o.split('=')[1] for o in extra if o.startswith('seed='))}"
            if tag or not extra:
                names[(method, key[:8])] = tag or method
    return names

def rows_of(experiment):
    out = []
    for f in (ROOT / "outputs/bench" / experiment).glob("results*.jsonl"):
        out += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    return out

def renames_for(rows, names):
    """The report's label of each row (method, or method@key8 where a method has rows of several settings) →
    the name of the run setting that made it."""
    from adir_exp.evaluation.results import labelled_by_key
    out = {}
    for original, labelled in zip(rows, labelled_by_key(rows)):
        tag = names.get((original["method"], original.get("key", "")[:8]))
        if tag and tag != labelled["method"]:
            out[labelled["method"]] = tag
    return out


def main_keys(rows, renames):
    from adir_exp.evaluation.results import labelled_by_key
    return [{**r, "method": renames.get(r["method"], r["method"])} for r in labelled_by_key(rows)]

EXPERIMENTS = {
    "domain_shift_sr4_astronomy": "astronomy",
    "domain_shift_sr4_documents": "documents",
    "domain_shift_deblur_astronomy": "astronomy",
    "domain_shift_sr4_natural": "natural",
}
PAIRS = ["gd:BASE", "adir_knn:gd", "adir_knn:adir_random", "adir_oracle:adir_knn", "adir_domain_knn:adir_knn",
         "adir_random:gd", "ddrm:gd", "adir_bank_c3:gd", "adir_bank_c8:gd", "adir_bank_c32:gd",
         "adir_bank_tuned_c8:gd", "adir_bank_c8:adir_knn", "adir_bank_tuned_c8:adir_knn",
         "adir_knn_no_lpips:gd", "adir_knn_no_lpips:adir_knn", "adir_knn_adm_conv:adir_knn"]

def recovered(rows, method, metric="lpips", resamples=10000, seed=0):
    """Share of ADIR-KNN's mean gain over GD that `method` recovers, on tiles where all three exist, with a 95 %
    bootstrap CI over photos (tiles of one photo resampled together)."""
    from adir_exp.evaluation.report import photo_of
    by = defaultdict(dict)
    for r in rows:
        if r.get(metric) is not None:
            by[r["image"]][r["method"]] = r[metric]
    tiles = [t for t, m in by.items() if {"gd", "adir_knn", method} <= m.keys()]
    if len(tiles) < 3:
        return None
    photos = sorted({photo_of(t) for t in tiles})
    groups = [[t for t in tiles if photo_of(t) == p] for p in photos]
    def ratio(ts):
        knn = np.mean([by[t]["adir_knn"] - by[t]["gd"] for t in ts])
        return np.mean([by[t][method] - by[t]["gd"] for t in ts]) / knn
    rng = np.random.default_rng(seed)
    boots = [ratio([t for i in rng.integers(0, len(groups), len(groups)) for t in groups[i]]) for _ in range(resamples)]
    return len(tiles), len(photos), ratio(tiles), np.percentile(boots, 2.5), np.percentile(boots, 97.5)

COMPARISONS = [("adir_knn", "gd"), ("adir_knn", "adir_random"), ("adir_oracle", "adir_knn"),
               ("adir_domain_knn", "adir_knn"), ("adir_knn_no_lpips", "gd"), ("adir_knn_adm_conv", "adir_knn"),
               ("ddrm", "gd"), ("dps", "gd")]
BANK = ["adir_bank_c3", "adir_bank_c8", "adir_bank_c32", "adir_bank_tuned_c8"]
SHOWN = ["lpips", "lpips_vgg", "dists", "psnr", "ssim"]


def cell(rows, method, reference, metric):
    from adir_exp.evaluation.report import paired_bootstrap, photo_of
    try:
        d = paired_bootstrap(rows, method, reference, metric, 10000, group=photo_of)
    except ValueError:
        return None, "—"
    mark = "**" if d.verdict in ("better", "worse") else ""
    return d, f"{mark}{d.mean:+.3f}{mark} [{d.low:+.3f}, {d.high:+.3f}]"


def headline(summary):
    from adir_exp.evaluation.report import photo_of
    lines = ["| experiment | comparison | tiles / photos | " + " | ".join(f"Δ {m}" for m in SHOWN) + " |",
             "|---" * (len(SHOWN) + 3) + "|"]
    bank = ["| experiment | method | tiles / photos | Δ lpips vs GD | share of ADIR-KNN's Δ lpips | Δ lpips_vgg | "
            "Δ dists | Δ psnr | s/tile (this run) |", "|---|---|---|---|---|---|---|---|---|"]
    for experiment in EXPERIMENTS:
        if experiment not in summary:
            continue
        rows = ROWS[experiment]
        for method, reference in COMPARISONS:
            cells = [cell(rows, method, reference, m) for m in SHOWN]
            if cells[0][0] is None:
                continue
            images = {r["image"] for r in rows if r["method"] == method} & {r["image"] for r in rows if r["method"] == reference}
            lines.append(f"| {experiment} | {method} − {reference} | {len(images)} / {len({photo_of(i) for i in images})} | "
                         + " | ".join(c for _, c in cells) + " |")
        for method in ["adir_knn", *BANK]:
            cells = [cell(rows, method, "gd", m) for m in ("lpips", "lpips_vgg", "dists", "psnr")]
            if cells[0][0] is None:
                continue
            images = {r["image"] for r in rows if r["method"] == method} & {r["image"] for r in rows if r["method"] == "gd"}
            share = summary[experiment].get(method)
            share_text = "1 (by definition)" if method == "adir_knn" else (
                f"{share[2]:.2f} [{share[3]:.2f}, {share[4]:.2f}]" if share else "—")
            seconds = np.mean([r["seconds"] for r in rows if r["method"] == method])
            bank.append(f"| {experiment} | {method} | {len(images)} / {len({photo_of(i) for i in images})} | {cells[0][1]} | "
                        f"{share_text} | {cells[1][1]} | {cells[2][1]} | {cells[3][1]} | {seconds:.1f} |")
    return "\n".join(lines) + "\n\n" + "\n".join(bank) + "\n\n" + seed_table()


SEED_COMPARISONS = [("adir_knn", "gd"), ("adir_knn", "adir_random"), ("adir_oracle", "adir_knn")]


def seed_table(experiment="domain_shift_sr4_astronomy"):
    """The headline comparisons at each seed, on the tiles every seed's four methods share (photo-level CIs)."""
    from adir_exp.evaluation.report import photo_of
    rows = ROWS.get(experiment, [])
    methods = {m for pair in SEED_COMPARISONS for m in pair}
    per_seed = {}
    for seed in (0, 1, 2):
        suffix = f"_seed{seed}" if seed else ""
        chosen = [{**r, "method": r["method"].removesuffix(suffix)} for r in rows
                  if r["method"] in {m + suffix for m in methods}]
        per_seed[seed] = chosen
    tiles = set.intersection(*[{r["image"] for r in chosen if r["method"] == m} for chosen in per_seed.values()
                               for m in methods])
    if not tiles:
        return ""
    lines = [f"Seeds ({experiment}, {len(tiles)} tiles / {len({photo_of(t) for t in tiles})} photos, Δ LPIPS):", "",
             "| seed | " + " | ".join(f"{a} − {b}" for a, b in SEED_COMPARISONS) + " |",
             "|---" * (len(SEED_COMPARISONS) + 1) + "|"]
    for seed, chosen in per_seed.items():
        chosen = [r for r in chosen if r["image"] in tiles]
        lines.append(f"| {seed} | " + " | ".join(cell(chosen, a, b, "lpips")[1] for a, b in SEED_COMPARISONS) + " |")
    return "\n".join(lines) + "\n"


ROWS = {}


def timing():
    """Seconds per tile of each method in the one run that timed them together (same process, same load)."""
    rows = rows_of("bank_timing")
    if not rows:
        return ""
    seconds = defaultdict(dict)
    for r in rows:
        seconds[r["method"]][r["image"]] = r["seconds"]
    tiles = sorted(set.intersection(*[set(v) for v in seconds.values()]))
    gd = np.mean([seconds["gd"][t] for t in tiles])
    lines = [f"| method | s/tile ({len(tiles)} tiles, one run) | ÷ GD's |", "|---|---|---|"]
    for method in ("gd", "adir_bank", "adir_bank_tuned", "adir_knn"):
        if method in seconds:
            mean = np.mean([seconds[method][t] for t in tiles])
            lines.append(f"| {method} | {mean:.1f} | {mean / gd:.2f} |")
    return "\n".join(lines) + "\n"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    summary = {}
    for experiment, domain in EXPERIMENTS.items():
        if not (ROOT / "outputs/bench" / experiment).is_dir():
            continue
        names = names_for(experiment)
        raw = rows_of(experiment)
        renames = renames_for(raw, names)
        args = [str(Path(sys.executable).parent / "adir-bench-report"), str(ROOT / "outputs/bench" / experiment), "--domain", domain,
                "--metrics", *METRICS, "--out", str(OUT / experiment), "--pairs", *PAIRS, "--resamples", "10000"]
        if renames:
            args += ["--rename", *[f"{k}={v}" for k, v in renames.items()]]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        rows = main_keys(raw, renames)
        ROWS[experiment] = rows
        summary[experiment] = {m: recovered(rows, m) for m in ("adir_bank_c3", "adir_bank_c8", "adir_bank_c32",
                                                               "adir_bank_tuned_c8", "adir_random", "adir_domain_knn")}
        # the seed spread of the headline comparisons (astronomy: seeds 1, 2 ran on one tile per image)
        seeds = {}
        for s in ("", "_seed1", "_seed2"):
            by = defaultdict(dict)
            for r in rows:
                if r["method"] in (f"gd{s}", f"adir_knn{s}") and r.get("lpips") is not None:
                    by[r["image"]][r["method"].replace(s, "") if s else r["method"]] = r["lpips"]
            seeds[s or "_seed0"] = by
        common = set.intersection(*[{t for t, m in by.items() if len(m) == 2} for by in seeds.values()])
        if common and len(seeds) == 3:
            deltas = {s: float(np.mean([by[t]["adir_knn"] - by[t]["gd"] for t in common])) for s, by in seeds.items()}
            summary[experiment]["seeds"] = {"tiles": len(common), "knn_minus_gd_lpips": deltas}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    (OUT / "headline.md").write_text(headline(summary) + "\n" + timing())
    print(json.dumps(summary, indent=1, default=float))

main()
