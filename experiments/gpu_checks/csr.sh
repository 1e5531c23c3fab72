#!/usr/bin/env bash
# Wall-time budget: 58 s in all (tests capped at 32 s incl. Triton compiles; the spot timings get
# what is left, at least 16 s, and stop starting cases 8 s before their cap).
# Issue 7, Pallas CSR SpMM / SpMV / SDDMM on the GPU: bash experiments/gpu_checks/csr.sh OUTDIR [--smoke]
# (1) the kernel tests, compiled (interpret=False where JAX sees a GPU), the slow ones included
#     (JSPARSE_RUN_SLOW=1) -> OUTDIR/csr_tests.xml;
# (2) spot timings (the harness times the SpMM grid): SpMV GB/s vs copy, SDDMM vs torch
#     sampled_addmm, SpMM N = 32 / 128 spot checks, the row schedule's cost, config variants,
#     torch CSR last -> OUTDIR/csr_bench.json, OUTDIR/csr_bench.md (table printed last).
# --smoke: no tests (CPU here is shared), the timings at tiny shapes in Pallas interpret mode.
set -uo pipefail
out=${1:?usage: csr.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke -eq 0 ]; then
  JSPARSE_RUN_SLOW=1 timeout 32 python3 -P -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
    --junitxml="$out/csr_tests.xml" tests/pallas_kernels/test_csr_spmm.py tests/pallas_kernels/test_csr_spmv.py \
    tests/pallas_kernels/test_csr_sddmm.py tests/pallas_kernels/test_csr_rows.py \
    tests/pallas_kernels/test_csr_ops.py 2>&1 | tail -25
  echo "pytest exit: ${PIPESTATUS[0]} after ${SECONDS} s"
  left=$(( 58 - SECONDS )); [ $left -lt 16 ] && left=16
  timeout $left python3 -P experiments/gpu_checks/csr_bench.py "$out" --budget-s $(( left - 8 ))
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P experiments/gpu_checks/csr_bench.py "$out" --smoke --budget-s 240
fi
echo "csr_bench exit: $? after ${SECONDS} s"
