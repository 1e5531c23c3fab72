#!/usr/bin/env bash
# Budget: 120 s wall time on one H100, JAX/Triton/torch.compile compilation included (tests capped
# at 45 s, benchmark at the rest less 8 s).
# Block-sparse attention kernel (issue 9): bash experiments/gpu_checks/attention.sh OUTDIR [--smoke]
#
# 1. The kernel tests, compiled on the GPU (tests/pallas_kernels/test_block_sparse_attention.py,
#    GPU-only larger shapes and slow tests included) -> OUTDIR/attention_tests.xml (junit).
# 2. attention_bench.py: copy bandwidth, decoding for two split-K targets, a small prefill config
#    sweep per head dim, then the final lines with the swept ConfigTable against cuDNN, SDPA and
#    compiled FlexAttention, and the targets
#    -> OUTDIR/attention_results.json and OUTDIR/attention_table.md (printed last).
# --smoke: tiny shapes in Pallas interpret mode on the CPU (checks this script, not the kernel).
set -uo pipefail
out=${1:?usage: attention.sh OUTDIR [--smoke]}
mode=${2:-}
mkdir -p "$out"
start=$(date +%s)
budget=120
if [ "$mode" = "--smoke" ]; then
  export JAX_PLATFORMS=cpu PYTHONPATH=".:${PYTHONPATH:-}"
  test_filter=(-k "bad_arguments or decode_one_row")
  test_limit=120
else
  test_filter=()
  test_limit=45
fi
export JSPARSE_PALLAS_INTERPRET=${JSPARSE_PALLAS_INTERPRET:-0} JSPARSE_RUN_SLOW=1
timeout --kill-after=5 "$test_limit" python3 -P -m pytest -v -ra -p no:cacheprovider \
  -W ignore::DeprecationWarning tests/pallas_kernels/test_block_sparse_attention.py \
  "${test_filter[@]}" --junitxml="$out/attention_tests.xml" 2>&1 | grep -v "^$" | tail -n 45
echo "tests: rc=${PIPESTATUS[0]} in $(( $(date +%s) - start ))s"
remaining=$(( budget - ($(date +%s) - start) - 8 ))
smoke_flag=()
if [ "$mode" = "--smoke" ]; then remaining=600; smoke_flag=(--smoke); fi
timeout --kill-after=3 $(( remaining + 4 )) python3 -P experiments/gpu_checks/attention_bench.py \
  "$out" --budget-s "$remaining" "${smoke_flag[@]}"
echo "attention_bench: rc=$? ; attention.sh done in $(( $(date +%s) - start ))s"
