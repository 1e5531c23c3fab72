#!/usr/bin/env bash
# One device call for every GPU check: bash experiments/gpu_checks/run_all.sh OUTDIR [family ...]
#
# Runs each family's script (experiments/gpu_checks/<family>.sh OUTDIR/<family>) under its own
# time limit (seconds, from FAMILY_LIMITS or 150), keeps going when one fails, and packs
# everything into OUTDIR/gpu_checks.tar.gz (the device tool returns at most 8 files).
# Expects the carried test wheels in .whl/ (pytest, hypothesis); installs them into /tmp/site.
set -uo pipefail
out=${1:?usage: run_all.sh OUTDIR [family ...]}; shift
families=("$@")
[ ${#families[@]} -eq 0 ] && families=(csr structured attention)
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >/dev/null 2>&1 || echo "wheel install failed"
fi
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv \
  > "$out/nvidia-smi.csv" 2>&1
python3 -c "import jax, jaxlib, torch, triton; print('jax', jax.__version__, jax.devices()); print('torch', torch.__version__, 'triton', triton.__version__)" \
  2>&1 | tee "$out/versions.txt"
eval "declare -A FAMILY_LIMITS=(${GPU_CHECK_LIMITS:-})"  # e.g. "[csr]=60 [harness]=200"
for family in "${families[@]}"; do
  limit=${FAMILY_LIMITS[$family]:-150}
  mkdir -p "$out/$family"
  echo "=== $family (limit ${limit}s) $(date -u +%H:%M:%S)"
  start=$(date +%s)
  timeout --kill-after=30 "$limit" bash "experiments/gpu_checks/$family.sh" "$out/$family" \
    > "$out/$family/stdout.log" 2>&1
  rc=$?
  echo "=== $family rc=$rc in $(( $(date +%s) - start ))s"
  tail -n 25 "$out/$family/stdout.log"
done
tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")" && rm -rf "$out"
