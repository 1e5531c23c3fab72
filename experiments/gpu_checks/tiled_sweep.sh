#!/usr/bin/env bash
# Wall-time budget: 260 s (tests stopped at 40 s, killed at 45 s; benchmark: no new case after 200 s, killed at 255 s - elapsed). run_all.sh's default limit is 150 s: run it as
#   GPU_CHECK_LIMITS="[tiled_sweep]=270" bash experiments/gpu_checks/run_all.sh OUTDIR tiled_sweep
# Issue 8, tiled unstructured format (16x64 tiles, bitmaps), the sweep in one run:
#   bash experiments/gpu_checks/tiled_sweep.sh OUTDIR [--smoke]
# (1) tests/pallas_kernels/test_tiled_spmm.py compiled (interpret=False where JAX sees a GPU; slow
#     ones included) -> OUTDIR/tiled_tests.log (pytest -v; SIGINT at the limit still prints the
#     failures);
# (2) timings: structured_bench.py --families tiled at sparsity 30, 40, 50, 70, 80, 90% x
#     4096x14336, 14336x4096 x N = 1, 8, 16, 32 (48 cases, default launch, bfloat16), vs dense
#     jnp.dot timed once per (shape, N) in the same run; every case checked against a float32
#     product of the same matrix (rel err) -> OUTDIR/structured_bench.json, .md (targets: >= 2x
#     dense from 70%, >= 1x from 40%, 30% reported without one; a sparsity x (shape, N) grid at
#     the end; rewritten after every case).
# Estimate (H100 runs of 2026-11-25, experiments/results/h100-2026-11-25-structured*, case_s):
# a case with a new weight matrix 3.8-7 s (the first, with warm-up, ~7 s), another N on the same
# matrix 1-2.3 s (kernel compile, a dense timing for a new (shape, N)); 12 matrices + 36 more
# cases ~ 7 + 11 x 3.8 + 36 x 1.6 ~ 110 s, so ~130 s with start-up; the tests ~20-40 s: ~170 s
# expected, 260 s at most (the 200 s case budget is a margin for slower high-density cases).
# --smoke: no tests (CPU here is shared), part of the sweep (30, 70%; N = 1, 32) at tiny shapes in
# Pallas interpret mode.
set -uo pipefail
out=${1:?usage: tiled_sweep.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
sweep=(--families tiled --sparsities 0.3,0.4,0.5,0.7,0.8,0.9 --ns 1,8,16,32)
if [ $smoke -eq 0 ]; then
  # JSPARSE_RUN_SLOW=1: some of these are marked slow for CI's CPU time.
  JSPARSE_RUN_SLOW=1 timeout -s INT -k 5 40 python3 -P -m pytest -v -p no:cacheprovider \
    -W ignore::DeprecationWarning --tb=short -rfE tests/pallas_kernels/test_tiled_spmm.py \
    > "$out/tiled_tests.log" 2>&1
  echo "pytest exit: $?"
  grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$out/tiled_tests.log" | tail -20
  left=$((255 - SECONDS))  # the bench is killed at 255 s in all (results are written per case)
  echo "benchmark: no new case after 200 s, killed at ${left} s"
  timeout -k 3 "$left" python3 -P experiments/gpu_checks/structured_bench.py "$out" \
    "${sweep[@]}" --budget-s 200
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P \
    experiments/gpu_checks/structured_bench.py "$out" --smoke --families tiled \
    --sparsities 0.3,0.7 --ns 1,32
fi
echo "structured_bench exit: $?"
