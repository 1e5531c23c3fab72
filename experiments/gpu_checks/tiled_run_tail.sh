# Sourced by tiled_mma.sh and tiled_gemv.sh: the second part of their device runs.
#   probe_or_sweep WHAT OUTDIR PROBE_SCRIPT PROBE_MARGIN_S
# WHAT "probe": PROBE_SCRIPT OUTDIR/probe (PROBE_ARGS passed on), its budget the run's time left
# less PROBE_MARGIN_S; else the suite's tiled sweep: structured_bench.py --families tiled over
# sparsity 30-90% x N = 1, 8, 16, 32 on 4096x14336 and 14336x4096, the default launches
# (OUTDIR/sweep/). The run stays under 580 s (bash's SECONDS from the run's start).
probe_or_sweep() {
  local what=$1 out=$2 probe=$3 margin=$4
  local left=$((580 - SECONDS))
  if [ "$what" = probe ]; then
    timeout -k 3 "$left" python3 -P "$probe" "$out/probe" \
      --budget-s $((left - margin)) ${PROBE_ARGS:-} > "$out/probe.log" 2>&1
  else
    timeout -k 3 "$left" python3 -P experiments/gpu_checks/structured_bench.py "$out/sweep" \
      --families tiled --defaults-only --sparsities 0.7,0.5,0.3,0.4,0.8,0.9 --ns 1,8,16,32 \
      --budget-s $((left - 50)) > "$out/sweep.log" 2>&1
  fi
  echo "$what rc $? at ${SECONDS} s"
}
