#!/usr/bin/env bash
# Budget: PALLAS_TEST_LIMIT seconds (default 240). Every Pallas kernel test, compiled on the GPU:
#   bash experiments/gpu_checks/pallas_tests.sh OUTDIR
# tests/pallas_kernels runs in interpret mode on the CPU (CI); where JAX sees a GPU the same tests
# compile their kernels (interpret=False), so this is the on-device proof of every kernel and of
# the default configs the ops pick. Slow tests included (JSPARSE_RUN_SLOW=1). Triton compiles are
# CPU-bound, so the tests spread over PALLAS_TEST_WORKERS pytest-xdist workers (default 6; the
# carried .whl/ holds pytest-xdist and execnet) sharing the one GPU.
# -> OUTDIR/pallas_tests.xml (junit), OUTDIR/pallas_tests.log (failures, skips, slowest tests).
set -uo pipefail
out=${1:?usage: pallas_tests.sh OUTDIR}
mkdir -p "$out"
limit=${PALLAS_TEST_LIMIT:-240}
workers=${PALLAS_TEST_WORKERS:-6}
xdist=(-n "$workers")
python3 -c "import xdist" 2>/dev/null || { echo "pytest-xdist missing: one process"; xdist=(); }
JSPARSE_RUN_SLOW=1 XLA_PYTHON_CLIENT_PREALLOCATE=false timeout -s INT -k 10 "$limit" \
  python3 -P -m pytest tests/pallas_kernels "${xdist[@]}" -p no:cacheprovider \
  -W ignore::DeprecationWarning -q -rfEs --tb=short --durations=15 \
  --junitxml="$out/pallas_tests.xml" > "$out/pallas_tests.log" 2>&1
rc=$?
echo "pytest exit: $rc after ${SECONDS} s"
grep -E "^(FAILED|ERROR)|passed|failed" "$out/pallas_tests.log" | tail -40
exit $rc
