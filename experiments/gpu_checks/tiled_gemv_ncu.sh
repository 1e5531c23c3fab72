#!/usr/bin/env bash
# Nsight Compute on the CUDA-core tiled kernel: bash experiments/gpu_checks/tiled_gemv_ncu.sh
# OUTDIR "M K N SPARSITY [SPEC]" ... (one quoted case an argument; writes OUTDIR/<case>.txt:
# speed of light, memory workload, scheduler and warp states, occupancy, launch, source
# counters, shared-memory wavefronts of the third call; prints the headline lines). Launches:
# experiments/gpu_checks/tiled_gemv_profile.py. Needs the library built.
set -u
out=${1:?usage: tiled_gemv_ncu.sh OUTDIR CASE...}; shift
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p "$out"
for case in "$@"; do
  name=$(echo "$case" | tr ' ' '_')
  timeout 150 $ncu --target-processes all --kernel-name regex:"TiledGemv" --launch-skip 2 --launch-count 1 \
   --section SpeedOfLight --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section Occupancy --section LaunchStats --section SourceCounters \
   --section InstructionStats --section ComputeWorkloadAnalysis --metrics smsp__inst_executed_pipe_xu.sum,smsp__inst_executed_pipe_alu.sum,smsp__inst_executed_pipe_fma.sum,smsp__inst_executed_pipe_lsu.sum,smsp__pcsamp_warps_issue_stalled_long_scoreboard,smsp__pcsamp_warps_issue_stalled_short_scoreboard,smsp__pcsamp_warps_issue_stalled_mio_throttle,smsp__pcsamp_warps_issue_stalled_math_pipe_throttle,smsp__pcsamp_warps_issue_stalled_wait,smsp__pcsamp_warps_issue_stalled_barrier,smsp__pcsamp_warps_issue_stalled_lg_throttle,smsp__pcsamp_warps_issue_stalled_not_selected,smsp__pcsamp_warps_issue_stalled_selected,smsp__pcsamp_warps_issue_stalled_branch_resolving,smsp__pcsamp_warps_issue_stalled_no_instructions,smsp__pcsamp_warps_issue_stalled_dispatch_stall,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum,l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_lg.sum,dram__bytes_read.sum,lts__t_bytes.sum \
   python3 -P experiments/gpu_checks/tiled_gemv_profile.py $case > "$out/$name.txt" 2>&1
  echo "== $name rc=$?"; grep -E "rel err|Duration|Memory Throughput|DRAM Through|Compute \(SM\)|Issue Slots|Eligible Warps|Active Warps Per|No Eligible|wavefronts|bank_conflicts|inst_executed|requests|sectors|dram__bytes|lts__t_bytes|Registers Per|Achieved Occ|Theoretical Occ|Block Limit|Waves|Stall|Dynamic Shared|pipe_|pcsamp|Pipe" "$out/$name.txt" | head -70
done
