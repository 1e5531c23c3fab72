#!/usr/bin/env bash
# Wall-time budget: 60 s on one GPU (the bench stops starting cases after 30 s; a hard timeout
# at 48 s; then the table is redrawn from the JSON lines written so far).
# Issue 10, the sharded benchmark on the GPU(s) JAX finds: bash experiments/scaling/gpu_bench.sh OUTDIR
# Full grid (issue 11's shapes): CSR SpMM 4096x4096 and 14336x4096 at 90% sparsity, N in {128, 1024},
# rows and K split; the Llama-3-8B sparse MLP (gate/up 14336x4096, down 4096x14336, 90%, 128 tokens)
# in the Megatron layout; block-sparse attention (S=4096, 32/8 heads of 128) split by heads; on
# 1, 2, 4, ... devices. On one GPU only the 1-device cases run (the shard_map overhead is measured).
# Writes OUTDIR/results.jsonl, OUTDIR/table.md, OUTDIR/speedup.png (with matplotlib), OUTDIR/log.txt.
set -uo pipefail
out=${1:?usage: gpu_bench.sh OUTDIR}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
export PYTHONPATH=".:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpus.csv" 2>&1
timeout 48 python3 -P experiments/scaling/bench.py --out "$out" --budget-s 30 2>&1 | tee "$out/log.txt"
echo "bench exit: ${PIPESTATUS[0]}" | tee -a "$out/log.txt"
if [ -s "$out/results.jsonl" ] && [ ! -s "$out/table.md" ]; then
  timeout 10 python3 -P experiments/scaling/bench.py --redraw "$out/results.jsonl" > /dev/null 2>&1
  echo "table redrawn after the timeout: $?" | tee -a "$out/log.txt"
fi
