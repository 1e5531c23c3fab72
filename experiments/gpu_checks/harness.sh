#!/usr/bin/env bash
# Budget: set by the caller. The benchmark harness on the GPU: bash harness.sh OUTDIR [run.py args]
# Arguments: "$@", else $HARNESS_ARGS, else a smoke run of every line on one case per op (uniform 4096x4096, s=0.9).
set -uo pipefail
out=${1:?usage: harness.sh OUTDIR [run.py args]}; shift
args=("$@")
# run_all.sh passes no arguments: HARNESS_ARGS (word-split) then stands in for them.
[ ${#args[@]} -eq 0 ] && [ -n "${HARNESS_ARGS:-}" ] && read -r -a args <<< "$HARNESS_ARGS"
[ ${#args[@]} -eq 0 ] && args=(--quick --sources uniform/4096x4096 --sparsities 0.9 --n 128
                               --formats csr nm)
python3 experiments/run.py "${args[@]}" --out "$out/results" 2>&1 | grep -v "%|"
# Keep the file count small for the device tool: the results folder is archived by run_all.sh.
