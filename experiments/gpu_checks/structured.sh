#!/usr/bin/env bash
# Wall-time budget: 150 s (tests capped at 60 s incl. Triton compiles, benchmark at 83 s).
# Issue 8, tensor-core formats (BSR, N:M, tiled): bash experiments/gpu_checks/structured.sh OUTDIR [--smoke]
# (1) the CI kernel tests, compiled (interpret=False where JAX sees a GPU), plus the public-op
#     tests through impl="pallas" -> OUTDIR/structured_tests.xml; also prints whether Triton's
#     tl.dot takes sparsity metadata (BUILD_NOTES, "GPU: sparse tensor cores from Pallas");
# (2) timings vs dense jnp.dot, torch bsr_dense_mm, torch to_sparse_semi_structured
#     -> OUTDIR/structured_bench.json, OUTDIR/structured_bench.md (table printed last).
# --smoke: no tests (CPU here is shared), benchmark at tiny shapes in Pallas interpret mode.
set -uo pipefail
out=${1:?usage: structured.sh OUTDIR [--smoke]}; shift
mkdir -p "$out"
smoke=0; [ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke -eq 0 ]; then
  python3 -c "import inspect, triton, triton.language as tl; print('triton', triton.__version__, 'tl.dot', inspect.signature(tl.dot)); print('sparse names in triton.language:', [n for n in dir(tl) if 'sparse' in n.lower()])" 2>&1 | tail -3
  # JSPARSE_RUN_SLOW=1: the float32/float16 sweeps that CI skips for time run here, compiled.
  JSPARSE_RUN_SLOW=1 timeout 60 python3 -P -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning \
    --junitxml="$out/structured_tests.xml" tests/pallas_kernels/test_bsr_spmm.py \
    tests/pallas_kernels/test_nm_matmul.py tests/pallas_kernels/test_tiled_spmm.py 2>&1 | tail -25
  echo "pytest exit: ${PIPESTATUS[0]}"
  timeout 83 python3 -P experiments/gpu_checks/structured_bench.py "$out" --budget-s 65
else
  PYTHONPATH=".:${PYTHONPATH:-}" JAX_PLATFORMS=cpu timeout 300 python3 -P experiments/gpu_checks/structured_bench.py "$out" --smoke
fi
echo "structured_bench exit: $?"
