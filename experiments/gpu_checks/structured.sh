#!/usr/bin/env bash
# Wall-time budget: 150 s (tests stopped at 35 s, killed at 40 s; benchmark: no new case after 150 - 32 s - elapsed, killed at 150 - 8 s - elapsed: 85 / 107 s after 35 s of tests).
# Issue 8, tensor-core formats (BSR, N:M, tiled): bash experiments/gpu_checks/structured.sh OUTDIR [--smoke]
# Round 4 (N:M first; the format now holds packed positions, so the default launches read them):
# (1) kernel tests compiled (interpret=False where JAX sees a GPU), one per launch the benchmark's
#     defaults use: N:M gathered decoding at N = 1 and at several columns a program (N = 8, 16),
#     per-position dots (prefill), the public op (packed positions, no packing pass), the
#     expanding dot (N in 17..32); BSR and tiled one test each
#     -> OUTDIR/structured_tests.log (pytest -v; SIGINT at the limit still prints the failures);
# (2) timings: 2:4 decoding defaults (N = 1, 8, 16 on 4096x14336, 4096x4096, 14336x4096) and
#     prefill N = 1024 on 4096x4096, then candidate N:M launches per shape (per-position dots
#     for decoding, prefill tiles, gather tiles), BSR and tiled one case each, vs dense jnp.dot
#     and torch to_sparse_semi_structured -> OUTDIR/structured_bench.json,
#     OUTDIR/structured_bench.md (device, versions, date, configs, targets met/missed; rewritten
#     after every case; table printed last). Every timed case is also checked against a float32
#     product of the same matrix (rel err column), which covers its exact launch configuration.
# --smoke: no tests (CPU here is shared), benchmark at tiny shapes in Pallas interpret mode.
set -uo pipefail
out=${1:?usage: structured.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke -eq 0 ]; then
  k=tests/pallas_kernels
  tests=(
    "$k/test_nm_matmul.py::test_gather_column[packed]"
    "$k/test_nm_matmul.py::test_gather_columns[packed]"
    "$k/test_nm_matmul.py::test_position_dots[2:4-packed]"
    "$k/test_nm_matmul.py::test_public_spmm_and_spmv_through_the_kernel"
    "$k/test_nm_matmul.py::test_two_four_ragged[bfloat16]"
    "$k/test_tiled_spmm.py::test_ragged_unstructured[bfloat16]"
    "$k/test_bsr_spmm.py::test_random_blocks_with_empty_block_rows[bfloat16]"
  )
  # JSPARSE_RUN_SLOW=1: some of these are marked slow for CI's CPU time.
  JSPARSE_RUN_SLOW=1 timeout -s INT -k 5 35 python3 -P -m pytest -v -p no:cacheprovider \
    -W ignore::DeprecationWarning --tb=short -rfE "${tests[@]}" > "$out/structured_tests.log" 2>&1
  echo "pytest exit: $?"
  grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$out/structured_tests.log" | tail -20
  left=$((150 - SECONDS))  # the bench gets what the tests left, with margins for the last case
  echo "benchmark: ${left} s left, no new case after $((left - 32)) s, killed at $((left - 8)) s"
  timeout -k 3 $((left - 11)) python3 -P experiments/gpu_checks/structured_bench.py "$out" \
    --budget-s $((left - 32))
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P experiments/gpu_checks/structured_bench.py "$out" --smoke
fi
echo "structured_bench exit: $?"
