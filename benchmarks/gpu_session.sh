#!/usr/bin/env bash
# Everything this project measures on a CUDA GPU, as one script (device time is scarce: one call, no reruns),
# finishing within BUDGET seconds:
#
#   1. bench_adaptation: paper-scale ADM-256 (random weights) LoRA iteration at batch 6 vs frozen / full FT, and
#      the 64-channel ADM used for the CPU numbers;
#   2. bench_sampler: one guided (ADIR) step at 512×512 on ADM-256 next to unguided and DPS, and the small model;
#   3. bench_retrieval --gpu: exact FAISS search of 1M × 512 vectors on the GPU vs the CPU, when the [gpu] extra's
#      wheels are in .whl/gpu/ (faiss-gpu 1.15.1 and the CUDA 12 runtime wheels it loads: nvidia-cuda-runtime-cu12,
#      nvidia-cublas-cu12, nvidia-curand-cu12; see pyproject.toml). They get their own --target, so a faiss that
#      cannot load never shadows faiss-cpu for the rest; without them the step says so and is skipped;
#   4. trains the embedded prior for the time left (same network as the CPU recipe; 64² crops, batch 128) and
#      tars the export (weights, loss curve, model card) into $OUT/prior.tar.
#
# Packages the GPU image lacks travel as wheels in .whl/ (see docs/benchmarks.md); the corpus' train split in
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
  ADAPT_GD="--arch adm64 --batch 2 --rounds 1 --iterations 1"; ADAPT_SMALL="$ADAPT_GD"
  SAMPLE_GD="--arch small --size 64 --steps 1"; SAMPLE_SMALL="$SAMPLE_GD"; RETRIEVAL_N=20000
else
  TRAIN_ARGS="data.crop=64 data.batch_size=128 data.num_workers=8 data.epoch_length=2560000 optim.ema_decay=0.999 export_every=1000"
  ADAPT_GD="--arch gd256 --batch 6 --lpips --rounds 5"; ADAPT_SMALL="--arch adm64 --batch 6 --lpips"
  SAMPLE_GD="--arch gd256 --size 512 --steps 5"; SAMPLE_SMALL="--arch small --size 128"; RETRIEVAL_N=1000000
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  $PYTHON -c "import torch, diffusers, peft, lightning; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"
  echo "== bench_adaptation $ADAPT_GD"; timeout 150 $PYTHON benchmarks/bench_adaptation.py $ADAPT_GD
  echo "== bench_adaptation $ADAPT_SMALL"; timeout 45 $PYTHON benchmarks/bench_adaptation.py $ADAPT_SMALL
  echo "== bench_sampler $SAMPLE_GD"; timeout 80 $PYTHON benchmarks/bench_sampler.py $SAMPLE_GD
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
  TRAIN_MINUTES=$(awk "BEGIN { print ($BUDGET - $SECONDS - 60) / 60 }")
  echo "== train prior for $TRAIN_MINUTES min"
  timeout $((BUDGET - SECONDS + 30)) $PYTHON -m adir_exp.cli.train_prior export_dir="$OUT/prior" \
    hydra.run.dir=/tmp/train_prior_run trainer.max_minutes="$TRAIN_MINUTES" $TRAIN_ARGS 2>&1 | grep -v "it/s\]$" | tail -20
  tar -C "$OUT" -cf "$OUT/prior.tar" prior && rm -rf "$OUT/prior"
  date -u
} 2>&1 | tee "$OUT/log.txt"
