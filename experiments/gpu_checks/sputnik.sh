#!/usr/bin/env bash
# Wall-time budget: 330 s in all, build included (build ~30 s, smoke ~20 s, the harness gets the
# rest minus 50 s for its last case and its report: --budget-s is computed below).
# Issue 7 baseline: Sputnik (Gale et al. SC20) timed in the same run as cuSPARSE.
#   bash experiments/gpu_checks/sputnik.sh OUTDIR
# Needs Sputnik's source in third_party/sputnik (git-ignored; carry it, see
# experiments/sputnik/README.md). Steps:
# (1) experiments/sputnik/build.sh -> build/sputnik/libsputnik_jsparse.so (sm_90), unless a build
#     newer than its inputs is there -> OUTDIR/build.log;
# (2) experiments/sputnik/smoke.py: SpMM / SDDMM vs float64 NumPy on every kernel variant and edge
#     case -> OUTDIR/smoke.log;
# (3) the harness, SpMM and SDDMM on csr uniform/4096x4096, float32, the issue's sparsities and
#     N / D in {32, 128, 1024}: jsparse-pallas, sputnik, sputnik-sddmm, torch-csr (cuSPARSE),
#     torch-sampled-addmm (cuSPARSE SDDMM), dense-fp32 -> OUTDIR/results/, OUTDIR/run.log
#     (other sources, sparsities, ops or lines through the SPUTNIK_* variables below).
set -uo pipefail
out=${1:?usage: sputnik.sh OUTDIR}
total=${SPUTNIK_CHECK_BUDGET_S:-330}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
lib=build/sputnik/libsputnik_jsparse.so

stale=1
if [ -f "$lib" ] && [ -z "$(find experiments/sputnik/shim.cu experiments/sputnik/build.sh \
    third_party/sputnik/sputnik -newer "$lib" 2>/dev/null | head -n 1)" ]; then
  stale=0
fi
if [ $stale -eq 1 ]; then
  bash experiments/sputnik/build.sh > "$out/build.log" 2>&1
  rc=$?
  cat "$out/build.log"
  if [ $rc -ne 0 ]; then echo "build failed (rc=$rc) after ${SECONDS} s"; exit 1; fi
else
  echo "using the existing $lib"
fi

timeout 60 python3 -P experiments/sputnik/smoke.py > "$out/smoke.log" 2>&1
echo "smoke exit: $? after ${SECONDS} s"
grep -v "^ok " "$out/smoke.log" | tail -n 20

budget=$(( total - SECONDS - 50 ))
[ $budget -lt 30 ] && budget=30
echo "harness: --budget-s $budget"
# SPUTNIK_SOURCES / SPUTNIK_SPARSITIES / SPUTNIK_OPS / SPUTNIK_LINES (word-split) replace the
# issue's uniform grid, e.g. the DLMC subset (JSPARSE_DLMC_ROOT where ../shared is not beside
# the checkout).
read -r -a sources <<< "${SPUTNIK_SOURCES:-uniform/4096x4096}"
read -r -a sparsities <<< "${SPUTNIK_SPARSITIES:-0.5 0.7 0.9 0.95 0.98 0.99}"
read -r -a ops <<< "${SPUTNIK_OPS:-spmm sddmm}"
read -r -a lines <<< "${SPUTNIK_LINES:-jsparse-pallas sputnik sputnik-sddmm torch-csr torch-sampled-addmm dense-fp32}"
# SPUTNIK_RUN_ARGS: more options for experiments/run.py, e.g. --kernel-time.
read -r -a more <<< "${SPUTNIK_RUN_ARGS:-}"
python3 experiments/run.py --full --ops "${ops[@]}" --formats csr --dtypes float32 \
  --sources "${sources[@]}" --sparsities "${sparsities[@]}" --n 32 128 1024 \
  --lines "${lines[@]}" --timing quick --budget-s "$budget" --out "$out/results" "${more[@]}" \
  > "$out/run.log" 2>&1
status=$?
tr '\r' '\n' < "$out/run.log" | grep -v "%|" | tail -n 70
python3 -c "import json, sys; print('unavailable:', json.load(open(sys.argv[1]))['unavailable_lines'])" \
  "$out/results/run.json" 2>/dev/null
echo "harness exit: $status after ${SECONDS} s"
exit $status
