#!/usr/bin/env bash
# Before/after of the CSR SpMM loop nest between two commits, in one run: builds
# experiments/cpu_kernels/spmm_bench.cc against csrc/ of each commit and times them alternately
# (ROUNDS rounds, so that a burst of load on a shared machine hits both), on the grid of issue 6
# (4096x4096 uniform, sparsity 0.7/0.9/0.98, N 32/128).
#
#   experiments/cpu_kernels/compare_commits.sh BEFORE [AFTER=HEAD] [THREADS=2] [ROUNDS=3]
#
# Prints one line per case and commit: the median of the rounds' median times, in ms, and the
# speedup of AFTER. Record `uptime` with it: the machine must be quiet for numbers to quote.
set -euo pipefail
before=${1:?usage: $0 BEFORE [AFTER] [THREADS] [ROUNDS]}
after=${2:-HEAD}
threads=${3:-2}
rounds=${4:-3}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for name in before after; do
  commit=${!name}
  mkdir -p "$work/$name"
  git -C "$root" archive "$commit" csrc | tar -x -C "$work/$name"
  g++ -std=c++17 -O3 -ffp-contract=fast -I"$work/$name/csrc" \
      "$root/experiments/cpu_kernels/spmm_bench.cc" -o "$work/$name/bench" -lpthread
done
echo "before $(git -C "$root" rev-parse --short "$before"), after $(git -C "$root" rev-parse --short "$after"); threads $threads; $(uptime)"
for sparsity in 0.7 0.9 0.98; do
  for n in 32 128; do
    for name in before after; do : >"$work/$name.times"; done
    for _ in $(seq "$rounds"); do
      for name in before after; do
        "$work/$name/bench" 4096 4096 "$sparsity" "$n" "$threads" 15 |
            sed -n 's/.*: median \([0-9.]*\) ms.*/\1/p' >>"$work/$name.times"
      done
    done
    b=$(sort -g "$work/before.times" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
    a=$(sort -g "$work/after.times" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')
    awk -v s="$sparsity" -v n="$n" -v b="$b" -v a="$a" \
        'BEGIN{printf "4096x4096 s=%s N=%s: before %.3f ms, after %.3f ms, speedup %.2fx\n", s, n, b, a, b / a}'
  done
done
echo "$(uptime)"
