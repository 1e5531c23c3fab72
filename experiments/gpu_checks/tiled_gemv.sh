#!/usr/bin/env bash
# The CUDA-core tiled kernel (jsparse._gpu.tiled_gemv) on the GPU, in one run:
#   bash experiments/gpu_checks/tiled_gemv.sh OUTDIR [probe|sweep]
# Builds both tiled libraries (tiled_gemv ~10 s; sparse_mma ~90-140 s where not built, in the background while
# tests/gpu/test_tiled_gemv.py runs; OUTDIR/tests.log), then
# - probe (default): experiments/gpu_checks/tiled_gemv_probe.py (OUTDIR/probe/; PROBE_ARGS are
#   passed on to it);
# - sweep: structured_bench.py --families tiled over sparsity 30-90% x N = 1, 8, 16, 32 on
#   4096x14336 and 14336x4096, the default routes, operand copies rotated past the L2
#   (OUTDIR/sweep/).
# Stays under ~580 s.
set -uo pipefail
out=${1:?usage: tiled_gemv.sh OUTDIR [probe|sweep]}
what=${2:-probe}
mkdir -p "$out"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
SECONDS=0
# (sparse_mma: loaded, so built only where $JSPARSE_CUDA_LIB_DIR lacks this source's build)
python3 -c "from jsparse._gpu import sparse_mma; print(sparse_mma.load())" > "$out/build_mma.log" 2>&1 &
mma=$!
python3 -m jsparse._gpu.tiled_gemv build > "$out/build_gemv.log" 2>&1
echo "gemv build rc $? at ${SECONDS} s"
timeout -s INT -k 5 150 python3 -P -m pytest -v -p no:cacheprovider -W ignore::DeprecationWarning \
  --tb=short -rfE tests/gpu/test_tiled_gemv.py > "$out/tests.log" 2>&1
echo "tests rc $? at ${SECONDS} s"; tail -2 "$out/tests.log"
wait $mma
echo "mma build rc $? at ${SECONDS} s"
source experiments/gpu_checks/tiled_run_tail.sh
probe_or_sweep "$what" "$out" experiments/gpu_checks/tiled_gemv_probe.py 60
