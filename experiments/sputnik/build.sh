#!/usr/bin/env bash
# Builds libsputnik_jsparse.so: Sputnik's float32 SpMM and SDDMM plus experiments/sputnik/shim.cu.
#
#   bash experiments/sputnik/build.sh            # -> build/sputnik/libsputnik_jsparse.so
#
# Expects Sputnik's source tree (github.com/google-research/sputnik, exported with `git archive`)
# in third_party/sputnik (git-ignored: its code is never committed here; see README.md).
# Compiles only the two translation units the ops need (no CMake: Sputnik's wants abseil, glog
# and googletest for its tests and benchmarks), one nvcc job per unit, in parallel; about 25 s.
# Environment: SPUTNIK_SRC (default third_party/sputnik), SPUTNIK_BUILD_DIR (default
# build/sputnik), SPUTNIK_ARCHS (space-separated SM versions, default "90"), NVCC (default: nvcc
# on the PATH, else /usr/local/cuda/bin/nvcc).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
src=${SPUTNIK_SRC:-$repo/third_party/sputnik}
build=${SPUTNIK_BUILD_DIR:-$repo/build/sputnik}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
archs=${SPUTNIK_ARCHS:-90}
start=$(date +%s%N)

for needed in sputnik/spmm/cuda_spmm.cu.cc sputnik/sddmm/cuda_sddmm.cu.cc; do
  if [ ! -f "$src/$needed" ]; then
    echo "build.sh: $src/$needed is missing; export Sputnik into $src first (README.md)" >&2
    exit 2
  fi
done
mkdir -p "$build"

gencode=()
for arch in $archs; do gencode+=(-gencode "arch=compute_$arch,code=sm_$arch"); done
# Static cudart: the library loads without a CUDA toolkit on the library path; it shares the
# device's primary context (and so torch's streams) with the torch / JAX runtimes of the process.
flags=(-std=c++17 -O3 --threads 0 "${gencode[@]}" -Xcompiler -fPIC,-fvisibility=hidden
       -I "$src" -I "$repo")

# One background nvcc per translation unit; each writes its own log, shown if it fails.
units=("$src/sputnik/spmm/cuda_spmm.cu.cc" "$src/sputnik/sddmm/cuda_sddmm.cu.cc"
       "$repo/experiments/sputnik/shim.cu")
pids=()
for unit in "${units[@]}"; do
  name=$(basename "$unit"); name=${name%%.*}
  "$nvcc" "${flags[@]}" -x cu -c "$unit" -o "$build/$name.o" > "$build/$name.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    name=$(basename "${units[$i]}"); name=${name%%.*}
    echo "build.sh: compiling ${units[$i]} failed:" >&2
    tail -n 40 "$build/$name.log" >&2
    failed=1
  fi
done
[ $failed -eq 0 ] || exit 1

"$nvcc" -shared "${gencode[@]}" --cudart static -o "$build/libsputnik_jsparse.so.tmp" \
  "$build/cuda_spmm.o" "$build/cuda_sddmm.o" "$build/shim.o"
mv "$build/libsputnik_jsparse.so.tmp" "$build/libsputnik_jsparse.so"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'build.sh: %s (sm %s, %s) in %d.%01d s\n' "$build/libsputnik_jsparse.so" "$archs" \
  "$("$nvcc" --version | tail -n 1)" $(( elapsed_ms / 1000 )) $(( elapsed_ms % 1000 / 100 ))
