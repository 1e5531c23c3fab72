#!/usr/bin/env bash
# Nsight Compute on the CUDA tiled kernel (issue 8): bash experiments/gpu_checks/tiled_profile.sh
# (writes $OUT/ncu/<name>.txt: speed of light, memory workload, scheduler and warp states,
# occupancy, launch, shared-memory wavefronts and bank conflicts, issue-slot use of the third
# call; prints the headline lines). Launches: experiments/gpu_checks/tiled_profile.py.
set -u
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p $OUT/ncu
python3 -m jsparse._gpu.sparse_mma build > /dev/null 2>&1
prof() { name=$1; shift
  timeout 150 $ncu --target-processes all --kernel-name regex:"TiledMma" --launch-skip 2 --launch-count 1 \
   --section SpeedOfLight --section MemoryWorkloadAnalysis --section SchedulerStats --section WarpStateStats --section Occupancy --section LaunchStats --section SourceCounters \
   --metrics l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,dram__bytes_read.sum,lts__t_bytes.sum \
   python3 -P experiments/gpu_checks/tiled_profile.py "$@" > $OUT/ncu/$name.txt 2>&1
  echo "== $name rc=$?"; grep -E "rel err|Duration|Memory Throughput|DRAM Through|Compute \(SM\)|Issue Slots|Eligible Warps|Active Warps Per|No Eligible|wavefronts|bank_conflicts|inst_executed|dram__bytes|lts__t_bytes|Registers Per|Achieved Occ|Theoretical Occ|Block Limit|Waves|Stall|Shared Memory Configuration Size|Dynamic Shared" $OUT/ncu/$name.txt | head -40; }
prof wide-n1-s70 4096 14336 1 0.7
prof wide-n1-s90 4096 14336 1 0.9
prof tall-n16-s70 14336 4096 16 0.7
prof tall-n16-s70-m1 14336 4096 16 0.7 1 8 1
