#!/usr/bin/env bash
# Nsight Compute on the Pallas CSR kernels (issue 7): bash experiments/gpu_checks/csr_profile.sh OUTDIR
# For each launch: OUTDIR/<name>.txt, ncu's details page (speed of light, occupancy, launch,
# warp-state, memory and instruction sections) of the third call; and the Triton kernels' PTX
# from XLA's dump (OUTDIR/ptx/).
set -uo pipefail
out=${1:?usage: csr_profile.sh OUTDIR}
mkdir -p "$out/ptx"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false
ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
echo "ncu: ${ncu:-none}"
run() {  # name, then csr_profile.py arguments
  local name=$1; shift
  if [ -n "$ncu" ]; then
    timeout 120 "$ncu" --target-processes all --kernel-name regex:'(spmm|sddmm)' --launch-skip 2 \
      --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats \
      --section InstructionStats --section ComputeWorkloadAnalysis \
      python3 -P experiments/gpu_checks/csr_profile.py "$@" > "$out/$name.txt" 2>&1
    echo "$name: ncu rc=$?"; grep -E "Duration|Achieved Occupancy|Registers Per|Theoretical Occ|L2 Hit|L1/TEX Hit|Issue Slots Busy|Executed Ipc A|Memory Throughput|Block Limit" "$out/$name.txt" | head -20
  fi
}
run spmm-0.9-128 spmm 0.9 128 none
run spmm-0.5-1024 spmm 0.5 1024 none
run spmm-0.98-32 spmm 0.98 32 none
run sddmm-0.9-128 sddmm 0.9 128 none
XLA_FLAGS="--xla_dump_to=$out/ptx --xla_dump_hlo_module_re=.*" timeout 120 \
  python3 -P experiments/gpu_checks/csr_profile.py spmm 0.9 128 none > /dev/null 2>&1
ls "$out/ptx" | head -20
find "$out/ptx" -type f ! -name '*.ptx' -delete
