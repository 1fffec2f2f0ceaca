#!/usr/bin/env bash
# GPU training benchmark: one prepared run, bounded by `timeout`.
#
#   bash bench/gpu.sh                 # on a CUDA machine, from the repository root
#   LIMIT_S=300 N=5500 bash bench/gpu.sh
#
# Runs bench/gpu_train.py on the GPU (features held on the GPU, bf16 autocast, bucketing,
# 5,500 IEMOCAP-like utterances) and writes bench/results/gpu.json; when $OUT is set (the
# device runner's output folder), a copy and the log go there too. Prints the JSON last.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
LIMIT_S=${LIMIT_S:-420}
N=${N:-5500}
RESULT=bench/results/gpu.json
LOG=${OUT:-/tmp}/gpu_bench.log

{
  echo "== $(date -u +%FT%TZ) host $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,utilization.gpu --format=csv || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} 2>&1 | tee "$LOG"

status=0
timeout --signal=TERM --kill-after=15 "$LIMIT_S" \
  "$PY" bench/gpu_train.py --device cuda --n "$N" --out "$RESULT" 2> >(tee -a "$LOG" >&2) \
  | tail -n 1 > /tmp/gpu_bench_last.json || status=$?
if [ "$status" -ne 0 ]; then
  echo "gpu_train.py failed or timed out (exit $status, limit ${LIMIT_S}s)" | tee -a "$LOG" >&2
  exit "$status"
fi
if [ -n "${OUT:-}" ]; then
  cp "$RESULT" "$OUT/gpu.json"
fi
cat /tmp/gpu_bench_last.json
