#!/usr/bin/env bash
# Everything this project measures on a CUDA GPU, as one script (device time is scarce: one call, no reruns),
# finishing within BUDGET seconds:
#
#   1. bench_paper_scale: Table 1 time per image (400 LoRA iterations + 1000 guided steps at 512², GD-256, random
#      weights) per speed option (fp32, fused LoRA, TF32, bf16, channels_last, compile, CUDA graphs), with the
#      guided/unguided step ratio; it starts no new variant after 120 s;
#   2. bench_adaptation: paper-scale ADM-256 LoRA iteration (peft and fused) at batch 6 vs frozen / full FT, and
#      the 64-channel ADM used for the CPU numbers;
#   3. bench_sampler: the small model's guided step next to unguided and DPS (GD-256 at 512² is in 1.);
#   4. bench_retrieval --gpu: exact FAISS search of 1M × 512 vectors on the GPU vs the CPU, when the [gpu] extra's
#      wheels are in .whl/gpu/ (faiss-gpu 1.15.1 and the CUDA 12 runtime wheels it loads: nvidia-cuda-runtime-cu12,
#      nvidia-cublas-cu12, nvidia-curand-cu12; see pyproject.toml). They get their own --target, so a faiss that
#      cannot load never shadows faiss-cpu for the rest; without them the step says so and is skipped;
#   5. bf16 against fp32 on real tiles: GD sampling and ADIR-KNN adaptation with the embedded prior on the held-out
#      corpus tiles (`experiment=mini_repro`), LPIPS/PSNR per tile in $OUT/precision (needs the provisioned
#      metric weights in $ADIR_HOME/torch: copy ~/.cache/adir_exp/torch to .gpu/torch before the call);
#   6. trains the embedded prior for the time left (same network as the CPU recipe; 64² crops, batch 128) and
#      tars the export (weights, loss curve, model card) into $OUT/prior.tar; skipped without the corpus or when
#      less than a minute is left.
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
  PAPER="--iterations 5 --steps 5 --warmup 2 --budget 120"
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  $PYTHON -c "import torch, diffusers, peft, lightning; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"
  echo "== bench_paper_scale $PAPER"; timeout 200 $PYTHON benchmarks/bench_paper_scale.py $PAPER
  echo "== bench_adaptation $ADAPT_GD"; timeout 180 $PYTHON benchmarks/bench_adaptation.py $ADAPT_GD
  echo "== bench_adaptation $ADAPT_SMALL"; timeout 45 $PYTHON benchmarks/bench_adaptation.py $ADAPT_SMALL
  echo "== bench_sampler $SAMPLE_SMALL"; timeout 30 $PYTHON benchmarks/bench_sampler.py $SAMPLE_SMALL
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
    echo "== bf16 vs fp32 on the embedded prior's held-out tiles (GD and ADIR-KNN)"
    if [ "${SMOKE:-0}" = 1 ]; then AGREE="benchmark.first_n=1 benchmark.tiles.per_image=1 sampler.num_steps=2 adaptation.iterations=2"
    else AGREE="benchmark.first_n=2"; fi
    timeout 150 $PYTHON -m adir_exp.cli.bench -m experiment=mini_repro 'method=[gd,adir_knn]' device=auto \
      model.precision=fp32,bf16 adaptation.precision=fp32,bf16 experiment_name=precision_gpu \
      benchmark.results_dir="$OUT/precision" hydra.sweep.dir="$OUT/precision_runs" $AGREE 2>&1 | grep -v "step/s\]\|pair/s\]" | tail -30
  else
    echo "== bf16 vs fp32 on real tiles: skipped (no metric weights at $ADIR_HOME/torch)"
  fi
  TRAIN_SECONDS=$((BUDGET - SECONDS - 60))
  if [ ! -d "$ADIR_HOME/corpus/train" ]; then
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
