#!/usr/bin/env bash
# Wall-time budget: 150 s (tests capped at 62 s incl. Triton compiles, benchmark at 85 s).
# Issue 7, Pallas CSR SpMM / SpMV / SDDMM on the GPU: bash experiments/gpu_checks/csr.sh OUTDIR [--smoke]
# (1) the CI kernel tests, compiled (interpret=False where JAX sees a GPU) -> OUTDIR/csr_tests.xml;
# (2) timings vs dense fp32, torch CSR, jax BCSR, torch sampled_addmm, copy bandwidth
#     -> OUTDIR/csr_bench.json, OUTDIR/csr_bench.md (table printed last).
# --smoke: no tests (CPU here is shared), benchmark at tiny shapes in Pallas interpret mode.
set -uo pipefail
out=${1:?usage: csr.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke -eq 0 ]; then
  timeout 62 python3 -P -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
    --junitxml="$out/csr_tests.xml" tests/pallas_kernels/test_csr_spmm.py tests/pallas_kernels/test_csr_spmv.py \
    tests/pallas_kernels/test_csr_sddmm.py tests/pallas_kernels/test_csr_ops.py 2>&1 | tail -25
  echo "pytest exit: ${PIPESTATUS[0]}"
  timeout 85 python3 -P experiments/gpu_checks/csr_bench.py "$out" --budget-s 68
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P experiments/gpu_checks/csr_bench.py "$out" --smoke
fi
echo "csr_bench exit: $?"
