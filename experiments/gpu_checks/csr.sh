#!/usr/bin/env bash
# Wall-time budget: 80 s in all (tests capped at 30 s incl. Triton compiles; the spot timings get
# what is left, at least 20 s, and stop starting cases 6 s before their cap).
# Issue 7, Pallas CSR SpMM / SpMV / SDDMM on the GPU, round 3: bash experiments/gpu_checks/csr.sh OUTDIR [--smoke]
# (1) a chosen list of kernel tests, compiled (interpret=False where JAX sees a GPU): every kernel
#     on ragged rows, the unmasked paths, the public ops, and every config the timings use
#     (test_csr_gpu_configs.py) -> OUTDIR/csr_tests.xml;
# (2) spot timings (the harness times the SpMM grid): SpMV GB/s vs copy, SDDMM vs torch
#     sampled_addmm + variants (two rows a program, 64-wide steps, 4 warps), SpMM N = 128 / 32
#     default vs variants (two rows a program, 128-wide N tile) vs torch CSR, the SpMV row
#     schedule's cost (given, computed in the call, or skipped where the rows allow: the default); targets met/missed -> OUTDIR/csr_bench.json, OUTDIR/csr_bench.md (printed last).
# --smoke: no tests (CPU here is shared), the timings at tiny shapes in Pallas interpret mode.
set -uo pipefail
out=${1:?usage: csr.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
t=tests/pallas_kernels
if [ $smoke -eq 0 ]; then
  timeout 30 python3 -P -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning -rs \
    --junitxml="$out/csr_tests.xml" \
    "$t/test_csr_ops.py::test_wrappers_match_float64" \
    "$t/test_csr_ops.py::test_public_ops_and_gradient_through_pallas" \
    "$t/test_csr_spmm.py::test_ragged_rows_with_padding[float32]" \
    "$t/test_csr_spmm.py::test_rows_per_program_with_a_spare_slot" \
    "$t/test_csr_spmm.py::test_edge_shapes" \
    "$t/test_csr_spmv.py::test_ragged_rows_with_padding[float32]" \
    "$t/test_csr_sddmm.py::test_ragged_rows_with_padding[float32]" \
    "$t/test_csr_sddmm.py::test_d_a_multiple_of_block_d" \
    "$t/test_csr_sddmm.py::test_rows_per_program_with_a_spare_slot" \
    "$t/test_csr_spmm.py::test_natural_order_launch" \
    "$t/test_csr_spmv.py::test_natural_order_launch" \
    "$t/test_csr_sddmm.py::test_natural_order_launch" \
    "$t/test_csr_gpu_configs.py" 2>&1 | tail -15
  echo "pytest exit: ${PIPESTATUS[0]} after ${SECONDS} s"
  left=$(( 80 - SECONDS )); [ $left -lt 20 ] && left=20
  timeout $left python3 -P experiments/gpu_checks/csr_bench.py "$out" --budget-s $(( left - 6 ))
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P experiments/gpu_checks/csr_bench.py "$out" --smoke --budget-s 240
fi
echo "csr_bench exit: $? after ${SECONDS} s"
