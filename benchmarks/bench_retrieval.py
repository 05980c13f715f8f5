"""Retrieval benchmark: search latency and recall at 1M × 512, and embedding throughput of the offline encoder.

    python benchmarks/bench_retrieval.py                      # full run (~20 min on 2 busy cores, ~8 GB RAM)
    python benchmarks/bench_retrieval.py --n 100000 --images 64 --skip-isotropic   # quick smoke run
    python benchmarks/bench_retrieval.py --gpu --skip-isotropic --skip-ivfpq --skip-throughput   # GPU vs CPU

What is measured, on what:

* Search goes through the production path: vectors are written as embedding shards, assembled by
  ``assemble_index`` (exact ``IndexFlatIP``, or IVF-PQ trained on a subset) and searched with
  ``EmbeddingIndex.search``, one query at a time (the way ADIR queries: one y per reconstruction), k = 20.
* Vectors: ``clustered`` = unit vectors around 10 000 random centres (≈100 per cluster, cosine ≈ 0.74 within a
  cluster, ≈ 0 across), a stand-in for image embeddings, whose neighbourhoods are clustered too. Recall@20 is
  |IVF-PQ top-20 ∩ exact top-20| / 20 over held-out queries drawn from the same mixture. ``isotropic`` =
  normalised Gaussian noise, the worst case for any partitioning index (no structure to exploit), reported for
  contrast. IVF-PQ is shown with and without exact re-ranking (``refine``) of its candidates. Exact search is
  also timed on a batch of all the queries at once (time per query). ``--gpu`` adds the same exact-search rows
  with the index on the GPU(s) (``EmbeddingIndex(device="cuda")``; needs faiss-gpu, the ``[gpu]`` extra); their
  recall against the CPU result is measured, not assumed (fp32 sums in another order can swap near-ties).
* Throughput: JPEG photos (crops of scikit-image's samples, 640 × 480) through the whole build pipeline
  (file reading, JPEG decoding and preprocessing in DataLoader workers, Lightning predict loop, shard writing)
  against ``encode_images`` alone on the same images already preprocessed in memory, same batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from PIL import Image

from adir_exp.paths import configure_environment

configure_environment()

from adir_exp.retrieval.collection import plan_units
from adir_exp.retrieval.embedding import EmbedConfig, embed_units
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder
from adir_exp.retrieval.index import EmbeddingIndex, IndexConfig, assemble_index
from adir_exp.retrieval.shards import Shard, write_shard

K = 20
CHUNK = 100_000


def clustered_vectors(n: int, dim: int, clusters: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors c + spread·g/√dim around random unit centres c (Gaussian mixture on the sphere)."""
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        noise = rng.standard_normal((size, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        block = centres[rng.integers(0, clusters, size)] + noise
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def isotropic_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    out = rng.standard_normal((n, dim), dtype=np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def write_vector_shards(vectors: np.ndarray, shard_dir: Path) -> int:
    units = 0
    for units, start in enumerate(range(0, len(vectors), CHUNK)):
        block = vectors[start : start + CHUNK]
        ids = [f"v{start + i}" for i in range(len(block))]
        write_shard(shard_dir, units, Shard(ids, ids, block, []))
    return units + 1


def latency_ms(index: EmbeddingIndex, queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean and 95th percentile of single-query latency; also returns the rows found."""
    index.search(queries[:1], K)  # warm-up
    times, rows = [], []
    for query in queries:
        started = time.perf_counter()
        rows.append(index.search(query[None], K)[1][0])
        times.append(time.perf_counter() - started)
    return 1e3 * float(np.mean(times)), 1e3 * float(np.percentile(times, 95)), np.array(rows)


def batch_ms(index: EmbeddingIndex, queries: np.ndarray) -> float:
    """Time per query when all queries go in one call (the GPU's strength)."""
    index.search(queries[:1], K)  # warm-up
    started = time.perf_counter()
    index.search(queries, K)
    return 1e3 * (time.perf_counter() - started) / len(queries)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def bench_search(
    name: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    config: IndexConfig,
    workdir: Path,
    exact_queries: int,
    gpu: bool = False,
    ivfpq: bool = True,
) -> list[dict]:
    rows = []
    units = write_vector_shards(vectors, workdir / "shards")
    n, dim = vectors.shape
    del vectors
    flat_dir, ivf_dir = workdir / "flat", workdir / "ivfpq"
    flat_dir.mkdir()
    ivf_dir.mkdir()
    flat_config = IndexConfig(kind="flat")
    assemble_index(workdir / "shards", range(units), flat_dir, "bench", dim, flat_config, name)
    flat = EmbeddingIndex(flat_dir)
    truth = flat.search(queries, K)[1]  # exact (batched)
    default_threads = faiss.omp_get_max_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        faiss.omp_set_num_threads(threads)
        mean, p95, found = latency_ms(flat, queries[:exact_queries])
        assert recall(found, truth[:exact_queries]) == 1.0
        label = f"exact IndexFlatIP ({threads} faiss thread{'s' if threads > 1 else ''})"
        rows.append({"data": name, "index": label, "ms_mean": mean, "ms_p95": p95, "recall@20": 1.0})
    faiss.omp_set_num_threads(default_threads)
    label = f"exact IndexFlatIP, batch of {len(queries)}"
    rows.append({"data": name, "index": label, "ms_mean": batch_ms(flat, queries), "ms_p95": None, "recall@20": 1.0})
    del flat
    if gpu:
        on_gpu = EmbeddingIndex(flat_dir, device="cuda")
        where = f"{faiss.get_num_gpus()} GPU{'s' if faiss.get_num_gpus() > 1 else ''}"
        mean, p95, found = latency_ms(on_gpu, queries[:exact_queries])
        rows.append(
            {
                "data": name,
                "index": f"exact IndexFlatIP on {where}",
                "ms_mean": mean,
                "ms_p95": p95,
                "recall@20": recall(found, truth[:exact_queries]),
            }
        )
        found = on_gpu.search(queries, K)[1]
        label = f"exact IndexFlatIP on {where}, batch of {len(queries)}"
        rows.append(
            {
                "data": name,
                "index": label,
                "ms_mean": batch_ms(on_gpu, queries),
                "ms_p95": None,
                "recall@20": recall(found, truth),
            }
        )
        del on_gpu
    if not ivfpq:
        shutil.rmtree(workdir / "shards")
        shutil.rmtree(flat_dir)
        return rows

    started = time.perf_counter()
    assemble_index(workdir / "shards", range(units), ivf_dir, "bench", dim, config, name)
    build_s = time.perf_counter() - started
    for refine in (1, config.refine):
        index = EmbeddingIndex(ivf_dir, refine=refine)
        mean, p95, found = latency_ms(index, queries)
        label = f"IVF{config.nlist},PQ{config.m}x{config.nbits} nprobe={config.nprobe} refine={refine}"
        rows.append(
            {
                "data": name,
                "index": label,
                "ms_mean": mean,
                "ms_p95": p95,
                "recall@20": recall(found, truth),
                "build_s": build_s,
            }
        )
    shutil.rmtree(workdir / "shards")
    shutil.rmtree(flat_dir)
    shutil.rmtree(ivf_dir)
    return rows


def make_photos(folder: Path, count: int, rng: np.random.Generator) -> None:
    """640 × 480 JPEG crops of scikit-image's sample photos (random crop, scale, flip)."""
    from skimage import data

    sources = [
        Image.fromarray(getattr(data, n)()).convert("RGB")
        for n in ("astronaut", "chelsea", "coffee", "rocket", "horse", "camera", "coins", "hubble_deep_field")
    ]
    folder.mkdir(parents=True)
    for i in range(count):
        image = sources[i % len(sources)]
        scale = rng.uniform(1.3, 2.0)
        big = image.resize((int(image.width * scale), int(image.height * scale)), Image.BICUBIC)
        left, top = int(rng.integers(0, big.width - 320 + 1)), int(rng.integers(0, big.height - 240 + 1))
        crop = big.crop((left, top, left + 320, top + 240)).resize((640, 480), Image.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(folder / f"photo{i:05d}.jpg", quality=90)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the DataLoader workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def bench_throughput(count: int, batch_size: int, workers: list[int], repeats: int, workdir: Path) -> list[dict]:
    """Forward alone and the full pipeline, alternated ``repeats`` times.

    On a shared machine the load drifts between runs, so each pipeline run is compared with the forward run
    just before it (paired ratio) and the median over repeats is reported. CPU seconds per image (this process
    plus its workers) measure the pipeline's extra work independently of the load.
    """
    encoder = EfficientNetLite0Encoder()
    folder = workdir / "photos"
    make_photos(folder, count, np.random.default_rng(0))
    pixels = torch.stack([encoder.preprocess.load(Image.open(p)) for p in sorted(folder.iterdir())])
    encoder.encode_images(pixels[:batch_size])  # warm-up

    def forward_alone() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), _cpu_seconds()
        for start in range(0, count, batch_size):
            encoder.encode_images(pixels[start : start + batch_size])
        return count / (time.perf_counter() - wall), (_cpu_seconds() - cpu) / count

    def pipeline(count_workers: int, run: int) -> tuple[float, float]:
        units = plan_units(folder, shard_size=batch_size * 4)
        config = EmbedConfig(
            batch_size=batch_size, num_workers=count_workers, accelerator="cpu", devices=1, progress=False
        )
        wall, cpu = time.perf_counter(), _cpu_seconds()  # includes the trainer set-up and worker start
        embed_units(units, encoder, workdir / f"shards-{count_workers}-{run}", config)
        return count / (time.perf_counter() - wall), (_cpu_seconds() - cpu) / count

    forward_runs: list[tuple[float, float]] = []
    pipeline_runs: dict[int, list[tuple[float, float]]] = {w: [] for w in workers}
    ratios: dict[int, list[float]] = {w: [] for w in workers}
    for run in range(repeats):
        forward_runs.append(forward_alone())
        for count_workers in workers:
            pipeline_runs[count_workers].append(pipeline(count_workers, run))
            ratios[count_workers].append(pipeline_runs[count_workers][-1][0] / forward_runs[-1][0])
    forward_cpu = float(np.median([cpu for _, cpu in forward_runs]))
    rows = [
        {
            "pipeline": f"encode_images alone (batch {batch_size})",
            "img_per_s": float(np.median([rate for rate, _ in forward_runs])),
            "ratio": 1.0,
            "ratio_range": (1.0, 1.0),
            "cpu_s_per_img": forward_cpu,
        }
    ]
    for count_workers in workers:
        rows.append(
            {
                "pipeline": f"full build loop, {count_workers} worker{'s' if count_workers > 1 else ''}",
                "img_per_s": float(np.median([rate for rate, _ in pipeline_runs[count_workers]])),
                "ratio": float(np.median(ratios[count_workers])),
                "ratio_range": (min(ratios[count_workers]), max(ratios[count_workers])),
                "cpu_s_per_img": float(np.median([cpu for _, cpu in pipeline_runs[count_workers]])),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="collection size")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200, help="IVF-PQ queries (recall and latency)")
    parser.add_argument("--exact-queries", type=int, default=50, help="single queries timed on the exact index")
    parser.add_argument("--images", type=int, default=256, help="photos for the throughput measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating forward / pipeline runs (median kept)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="1,2", help="DataLoader worker counts to measure")
    parser.add_argument("--skip-isotropic", action="store_true")
    parser.add_argument("--skip-search", action="store_true", help="only the throughput measurement")
    parser.add_argument("--skip-ivfpq", action="store_true", help="search: exact index only")
    parser.add_argument("--skip-throughput", action="store_true", help="only the search measurement")
    parser.add_argument("--gpu", action="store_true", help="also time exact search on the GPU(s) (faiss-gpu)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    if args.gpu and faiss.get_num_gpus() == 0:
        parser.error(f"--gpu: FAISS {faiss.__version__} ({faiss.__file__}) has no GPU support or sees no GPU")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_retrieval_"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = IndexConfig(kind="ivfpq")
    rng = np.random.default_rng(0)
    print(
        f"torch threads {torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    try:
        search_rows = []
        datasets = {} if args.skip_search else {"clustered": lambda n: clustered_vectors(n, args.dim, 10_000, 0.6, rng)}
        if not (args.skip_isotropic or args.skip_search):
            datasets["isotropic"] = lambda n: isotropic_vectors(n, args.dim, rng)
        for name, make in datasets.items():
            vectors = make(args.n + args.queries)
            queries, vectors = vectors[: args.queries].copy(), vectors[args.queries :]
            (workdir / name).mkdir()
            search_rows += bench_search(
                name, vectors, queries, config, workdir / name, args.exact_queries, args.gpu, not args.skip_ivfpq
            )
            del vectors
        workers = [int(w) for w in args.workers.split(",")]
        throughput_rows = (
            []
            if args.skip_throughput
            else bench_throughput(args.images, args.batch_size, workers, args.repeats, workdir)
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    if search_rows:
        print(f"\nSearch, {args.n} x {args.dim} float32, k = {K}, one query at a time unless batched (ms per query)")
        print(f"{'data':<10} {'index':<48} {'mean ms':>8} {'p95 ms':>8} {'recall@20':>10}")
    for row in search_rows:
        p95 = "-" if row["ms_p95"] is None else f"{row['ms_p95']:.2f}"
        print(f"{row['data']:<10} {row['index']:<48} {row['ms_mean']:>8.2f} {p95:>8} {row['recall@20']:>10.3f}")
    for row in [row for row in search_rows if "build_s" in row][::2]:
        print(f"IVF-PQ build ({row['data']}): train on {config.train_size} + add {args.n}: {row['build_s']:.0f} s")
    if throughput_rows:
        print(f"\nEmbedding throughput, EfficientNet-Lite0 @224, {args.images} JPEG photos 640x480, CPU")
        print(f"{'pipeline':<38} {'img/s':>7} {'vs forward (paired, range)':>27} {'CPU s/img':>10}")
    for row in throughput_rows:
        low, high = row["ratio_range"]
        paired = f"{row['ratio']:.0%} ({low:.0%}-{high:.0%})"
        print(f"{row['pipeline']:<38} {row['img_per_s']:>7.1f} {paired:>27} {row['cpu_s_per_img']:>10.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"search": search_rows, "throughput": throughput_rows}, indent=2))


if __name__ == "__main__":
    main()
