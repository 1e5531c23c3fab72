#!/usr/bin/env bash
# Issue 8, the CUDA tiled kernel (jsparse._gpu.sparse_mma.tiled_matmul) on the GPU, in one run:
#   bash experiments/gpu_checks/tiled_mma.sh OUTDIR [probe|sweep]
# Builds the library (nvcc, ~30-45 s), runs the kernel's GPU tests (tests/gpu/test_sparse_mma.py,
# the 2:4 public-op shapes cut to one; ~60-120 s; OUTDIR/tests.log), then
# - probe: experiments/gpu_checks/tiled_mma_probe.py (every launch checked on ragged shapes,
#   launches timed side by side; OUTDIR/probe/; PROBE_ARGS, e.g. "--columns 16,32 --configs
#   2-8-1,2-8-2-a", are passed on to it);
# - sweep (default): structured_bench.py --families tiled over sparsity 30-90% x N = 1, 8, 16,
#   32 on 4096x14336 and 14336x4096, the default launch, operand copies rotated past the L2
#   (OUTDIR/sweep/).
# Stays under ~580 s.
set -uo pipefail
out=${1:?usage: tiled_mma.sh OUTDIR [probe|sweep]}
what=${2:-sweep}
mkdir -p "$out"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
SECONDS=0
python3 -m jsparse._gpu.sparse_mma build > "$out/build.log" 2>&1
echo "build rc $? at ${SECONDS} s"
timeout -s INT -k 5 200 python3 -P -m pytest -v -p no:cacheprovider -W ignore::DeprecationWarning \
  --tb=short -rfE tests/gpu/test_sparse_mma.py -k "not test_public_op_both_layouts or 300" \
  > "$out/tests.log" 2>&1
echo "tests rc $? at ${SECONDS} s"; tail -2 "$out/tests.log"
source experiments/gpu_checks/tiled_run_tail.sh
probe_or_sweep "$what" "$out" experiments/gpu_checks/tiled_mma_probe.py 90
