#!/usr/bin/env bash
# Nsight Compute on the Pallas CSR kernels (issue 7): bash experiments/gpu_checks/csr_profile.sh OUTDIR
# For each launch: OUTDIR/<name>.txt, ncu's details page (speed of light, occupancy, launch,
# warp-state, memory and instruction sections, and sector/instruction counts) of the third call.
# One launch: csr_profile.sh OUTDIR NAME csr_profile.py-ARGS (e.g. sputnik-0.9-128 sputnik-spmm 0.9 128).
set -uo pipefail
out=${1:?usage: csr_profile.sh OUTDIR}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
echo "ncu: ${ncu:-none}"
metrics=lts__t_sectors_op_read.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,smsp__inst_executed.sum,smsp__sass_thread_inst_executed_op_ffma_pred_on.sum,smsp__sass_thread_inst_executed_op_fmul_pred_on.sum,dram__bytes_read.sum${NCU_EXTRA_METRICS:+,$NCU_EXTRA_METRICS}
# NCU_EXTRA_METRICS (comma-separated metric names) and NCU_EXTRA_SECTIONS (space-separated section
# names, e.g. "MemoryWorkloadAnalysis_Tables SourceCounters") add to the report.
extra_sections=()
for section in ${NCU_EXTRA_SECTIONS:-}; do extra_sections+=(--section "$section"); done
run() {  # name, then csr_profile.py arguments
  local name=$1; shift
  if [ -n "$ncu" ]; then
    timeout 120 "$ncu" --target-processes all --kernel-name regex:"${KERNELS:-(spmm|sddmm|Spmm|Sddmm)}" --metrics "$metrics" --launch-skip 2 \
      --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats \
      --section InstructionStats --section ComputeWorkloadAnalysis "${extra_sections[@]}" \
      python3 -P experiments/gpu_checks/csr_profile.py "$@" > "$out/$name.txt" 2>&1
    echo "$name: ncu rc=$?"; grep -E "Duration|Achieved Occupancy|Registers Per|Theoretical Occ|L2 Hit|L1/TEX Hit|Issue Slots Busy|Executed Ipc A|Memory Throughput|Block Limit" "$out/$name.txt" | head -20
  fi
}
if [ $# -gt 1 ]; then  # csr_profile.sh OUTDIR NAME ARGS... : one launch
  shift; run "$@"; exit
fi
run spmm-0.9-128 spmm 0.9 128 none
run spmm-0.5-1024 spmm 0.5 1024 none
run spmm-0.98-32 spmm 0.98 32 none
run sddmm-0.9-128 sddmm 0.9 128 none
