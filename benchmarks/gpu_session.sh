#!/usr/bin/env bash
# Everything this project measures on a CUDA GPU, as one script (device time is scarce: one call, no reruns),
# finishing within BUDGET seconds (FULL=1 adds steps 2–3, TRAIN=1 step 6):
#
#   1. bench_paper_scale: Table 1 time per image (400 LoRA iterations + 1000 guided steps at 512², GD-256, random
#      weights) per speed option (fp32, fused LoRA, TF32, bf16, channels_last, compile, CUDA graphs), with the
#      guided/unguided step ratio, and what ADIR-bank adds to GD (one adapter merge); no new variant after 75 s;
#   2./3. (FULL=1 only; measured on 2026-11-26, benchmarks/results/h100_2026-11-26.txt) bench_adaptation:
#      paper-scale ADM-256 LoRA iteration (peft and fused) at batch 6 vs frozen / full FT, and the 64-channel ADM
#      used for the CPU numbers; bench_sampler: the small model's guided step next to unguided and DPS;
#   4. bench_retrieval --gpu: exact FAISS search of 1M × 512 vectors on the GPU vs the CPU, when the [gpu] extra's
#      wheels are in .whl/gpu/ (faiss-gpu 1.15.1 and the CUDA 12 runtime wheels it loads: nvidia-cuda-runtime-cu12,
#      nvidia-cublas-cu12, nvidia-curand-cu12; see pyproject.toml). They get their own --target, so a faiss that
#      cannot load never shadows faiss-cpu for the rest; without them the step says so and is skipped;
#   5. the baselines' rows (issue 22) on the GPU: DeepRED (2000 iterations per tile), deepinv's DPS, DDRM and
#      DiffPIR beside our GD, DPS and DDRM, on the mini-reproduction's 20 tiles (`experiment=mini_repro`) and on
#      astronomy ×4 SR shard 0 of the domain-shift study (DeepRED and DiffPIR; its GD/ADIR rows are the CPU's),
#      plus GD in bf16 beside fp32 on the mini-reproduction tiles; the shards run side by side (one process per
#      shard, one CPU thread each) until the budget is spent, and their rows come back as $OUT/rows.tar (needs the
#      metric weights in $ADIR_HOME/torch and the study's astronomy test images in $ADIR_HOME/domain_shift);
#   6. (TRAIN=1 only) trains the embedded prior for the time left (same network as the CPU recipe; 64² crops,
#      batch 128) and tars the export (weights, loss curve, model card) into $OUT/prior.tar.
#
# Packages the GPU image lacks travel as wheels in .whl/ (docs/performance.md); the corpus' train split in
# .gpu/corpus/ (ADIR_HOME=.gpu). Locally: SMOKE=1 OUT=/tmp/gpu_smoke bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-outputs/gpu_session}
BUDGET=${BUDGET:-500}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 ADIR_HOME=${ADIR_HOME:-$PWD/.gpu}
if [ "${SMOKE:-0}" = 1 ]; then
  TRAIN_ARGS="data.crop=32 data.batch_size=4 data.num_workers=2 export_every=5 trainer.max_steps=10"
  ADAPT_GD="--arch tiny --batch 1 --rounds 1 --iterations 1"; ADAPT_SMALL="$ADAPT_GD"
  SAMPLE_SMALL="--arch tiny --size 32 --steps 1"; RETRIEVAL_N=20000
  PAPER="--tiny --iterations 1 --steps 1 --warmup 1 --variants fp32,fused,bf16,channels_last --budget 30"
else
  TRAIN_ARGS="data.crop=64 data.batch_size=128 data.num_workers=8 data.epoch_length=2560000 optim.ema_decay=0.999 export_every=1000"
  ADAPT_GD="--arch gd256 --batch 6 --lpips --rounds 3"; ADAPT_SMALL="--arch adm64 --batch 6 --lpips"
  SAMPLE_SMALL="--arch small --size 128"; RETRIEVAL_N=1000000
  PAPER="--iterations 5 --steps 5 --warmup 2 --budget 75"
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  $PYTHON -c "import torch, diffusers, peft, lightning; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"
  echo "== bench_paper_scale $PAPER"; timeout 170 $PYTHON benchmarks/bench_paper_scale.py $PAPER
  if [ "${FULL:-0}" = 1 ]; then
    echo "== bench_adaptation $ADAPT_GD"; timeout 180 $PYTHON benchmarks/bench_adaptation.py $ADAPT_GD
    echo "== bench_adaptation $ADAPT_SMALL"; timeout 45 $PYTHON benchmarks/bench_adaptation.py $ADAPT_SMALL
    echo "== bench_sampler $SAMPLE_SMALL"; timeout 30 $PYTHON benchmarks/bench_sampler.py $SAMPLE_SMALL
  fi
  if ls .whl/gpu/faiss_gpu-*.whl >/dev/null 2>&1; then
    echo "== bench_retrieval --gpu: exact search, $RETRIEVAL_N x 512, GPU vs CPU"
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-faiss \
      .whl/gpu/*.whl \
      && PYTHONPATH="/tmp/site-faiss:$PYTHONPATH" timeout 150 $PYTHON benchmarks/bench_retrieval.py --gpu \
        --n "$RETRIEVAL_N" --skip-isotropic --skip-ivfpq --skip-throughput --json "$OUT/retrieval_gpu.json"
  else
    echo "== bench_retrieval --gpu skipped: no faiss-gpu wheel in .whl/gpu/"
  fi
  if [ -d "$ADIR_HOME/torch" ]; then
    ROWS_SECONDS=$((BUDGET - SECONDS - 30))
    echo "== baselines' rows for $ROWS_SECONDS s: mini_repro (gd, dps, ddrm, deepinv_*, deepred; gd bf16) and astronomy shard 0"
    if [ "${SMOKE:-0}" = 1 ]; then
      ROWS="sampler.num_steps=2"; BASELINES="methods.deepinv_diffpir.num_steps=2 methods.deepred.iterations=2 methods.deepred.channels=8"
      MINI_N="benchmark.first_n=1"; ASTRO_N="benchmark.first_n=4"
    else ROWS=""; BASELINES=""; MINI_N=""; ASTRO_N=""; fi
    rows() {  # experiment shard name overrides...
      local experiment=$1 shard=$2 name=$3; shift 3
      OMP_NUM_THREADS=1 timeout "$ROWS_SECONDS" $PYTHON -m adir_exp.cli.bench experiment="$experiment" device=auto \
        benchmark.shard="$shard" benchmark.results_dir="$OUT/rows/$name" hydra.run.dir="/tmp/rows/$name-${shard/\//of}" \
        sampler.progress=false $ROWS "$@" > "/tmp/rows-$name-${shard/\//of}.log" 2>&1
    }
    mkdir -p /tmp/rows
    MINI="method=[gd,dps,ddrm,deepinv_dps,deepinv_ddrm,deepinv_diffpir,deepred]"
    for i in 0 1 2 3 4; do rows mini_repro "$i/5" mini_repro_sr4 "$MINI" $BASELINES $MINI_N & done
    rows mini_repro 0/1 mini_repro_sr4 "method=[gd]" model.precision=bf16 $MINI_N &
    for i in 0 3 6 9; do rows domain_shift_sr4_astronomy "$i/12" domain_shift_sr4_astronomy \
      "method=[deepinv_diffpir,deepred]" metrics=offline $BASELINES $ASTRO_N & done
    wait
    for f in /tmp/rows-*.log; do echo "-- $f"; grep -v "pair/s\]\|step/s\]\|it/s\]" "$f" | tail -4; done
    tar -C "$OUT" -cf "$OUT/rows.tar" rows && rm -rf "$OUT/rows"
  else
    echo "== baselines' rows: skipped (no metric weights at $ADIR_HOME/torch)"
  fi
  TRAIN_SECONDS=$((BUDGET - SECONDS - 60))
  if [ "${TRAIN:-0}" != 1 ]; then
    echo "== train prior: skipped (TRAIN=1 trains it)"
  elif [ ! -d "$ADIR_HOME/corpus/train" ]; then
    echo "== train prior: skipped (no corpus at $ADIR_HOME/corpus/train)"
  elif [ "$TRAIN_SECONDS" -lt 60 ]; then
    echo "== train prior: skipped ($TRAIN_SECONDS s left of BUDGET=$BUDGET)"
  else
    TRAIN_MINUTES=$(awk "BEGIN { print $TRAIN_SECONDS / 60 }")
    echo "== train prior for $TRAIN_MINUTES min"
    timeout $((BUDGET - SECONDS + 30)) $PYTHON -m adir_exp.cli.train_prior export_dir="$OUT/prior" \
      hydra.run.dir=/tmp/train_prior_run trainer.max_minutes="$TRAIN_MINUTES" $TRAIN_ARGS 2>&1 | grep -v "it/s\]$" | tail -20
    tar -C "$OUT" -cf "$OUT/prior.tar" prior && rm -rf "$OUT/prior"
  fi
  date -u
} 2>&1 | tee "$OUT/log.txt"
