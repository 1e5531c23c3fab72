#!/usr/bin/env bash
# Budget: 60 s. The sharded benchmark of experiments/scaling on the GPU(s) here (run_all.sh family).
exec bash experiments/scaling/gpu_bench.sh "$@"
