#!/usr/bin/env bash
# Nsight Compute on the Mosaic GPU BSR SpMM (issue 8): bash experiments/gpu_checks/bsr_profile.sh
# (writes $OUT/ncu/<name>.txt: speed of light, memory and compute workload, warp states,
# occupancy, launch, L2/DRAM bytes and the tensor pipe's active cycles of the third call; prints
# the headline lines). Launches: experiments/gpu_checks/bsr_profile.py.
set -u
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
export PYTHONPATH=$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p $OUT/ncu
prof() { name=$1; regex=$2; shift 2
  timeout 150 $ncu --target-processes all --kernel-name regex:"$regex" --launch-skip 2 --launch-count 1 \
   --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats \
   --metrics lts__t_sectors_op_read.sum,lts__t_bytes.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,lts__throughput.avg.pct_of_peak_sustained_elapsed \
   python3 -P experiments/gpu_checks/bsr_profile.py "$@" > $OUT/ncu/$name.txt 2>&1
  echo "== $name rc=$?"; grep -E "Duration|Memory Throughput|L2 Hit|Compute \(SM\)|lts__t|dram__bytes|hmma|Registers Per|Achieved Occ|Block Limit Sh|Grid Size|Waves" $OUT/ncu/$name.txt | head -24; }
prof mosaic-4096-b128-d05 "jsparse_bsr" mosaic 4096 4096 128 64 1024 0.5
prof dense-4096 "gemm|nvjet|sm90|cutlass" dense 4096 4096 128 64 1024 0.5
prof mosaic-14336-b128-d05 "jsparse_bsr" mosaic 14336 4096 128 64 1024 0.5
prof mosaic-14336-b128-d01 "jsparse_bsr" mosaic 14336 4096 128 64 1024 0.1
