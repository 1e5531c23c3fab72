#!/usr/bin/env bash
# Budget: set by the caller (pass --budget-s below it). The benchmark harness on the GPU:
#   bash harness.sh OUTDIR [run.py args]
# Arguments: "$@", else $HARNESS_ARGS, else a smoke run of every line on one case per op.
set -uo pipefail
out=${1:?usage: harness.sh OUTDIR [run.py args]}; shift
args=("$@")
# run_all.sh passes no arguments: HARNESS_ARGS (word-split) then stands in for them.
[ ${#args[@]} -eq 0 ] && [ -n "${HARNESS_ARGS:-}" ] && read -r -a args <<< "$HARNESS_ARGS"
[ ${#args[@]} -eq 0 ] && args=(--quick --sources uniform/4096x4096 --sparsities 0.9 --n 128
                               --formats csr nm)
# Straight to a file (a pipe would hold the output back if the run is killed); the results
# folder is archived by run_all.sh.
# In the background with TERM forwarded: `timeout` signals this shell, and run.py writes the
# cases it finished when it gets SIGTERM.
python3 experiments/run.py "${args[@]}" --out "$out/results" > "$out/run.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null' TERM
wait $pid
status=$?
wait $pid 2>/dev/null && status=$?
tr '\r' '\n' < "$out/run.log" | grep -v "%|" | tail -n 60
exit $status
