#!/usr/bin/env bash
# Which lines of one harness case finish, each under its own time limit:
#   bash experiments/gpu_checks/line_timeouts.sh OUTDIR CASE LIMIT_S LINE...
# Runs experiments/gpu_checks/line_probe.py once per line (a fresh process each, so a line that
# stalls is killed without taking the others with it) and writes the lines that finished to
# OUTDIR/finished_lines.txt, the rest to OUTDIR/timed_out_lines.txt; the probes' logs to
# OUTDIR/probe.log. A caller can then run the survey with --lines $(cat finished_lines.txt).
set -uo pipefail
out=${1:?usage: line_timeouts.sh OUTDIR CASE LIMIT_S LINE...}; case=$2; limit=$3; shift 3
mkdir -p "$out"
: > "$out/finished_lines.txt"; : > "$out/timed_out_lines.txt"
for line in "$@"; do
  echo "=== $line (limit ${limit}s)" >> "$out/probe.log"
  timeout -k 5 "$limit" python3 experiments/gpu_checks/line_probe.py --case "$case" \
    --lines "$line" >> "$out/probe.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then echo "$line" >> "$out/finished_lines.txt"
  else echo "$line rc=$rc" >> "$out/timed_out_lines.txt"; fi
done
echo "finished: $(tr '\n' ' ' < "$out/finished_lines.txt")"
echo "not finished: $(tr '\n' ' ' < "$out/timed_out_lines.txt")"
grep -E "median|error|n/a|Error" "$out/probe.log" | tail -20
