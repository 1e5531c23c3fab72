#!/usr/bin/env bash
# Issue 8 end to end on the GPU: Llama-3-8B SwiGLU MLP block with tiled unstructured weights at
# decoding token counts (mlp_block.py), then MiniLM with 2:4, 64x64-block and tiled weights
# (experiments/gpu_checks/models.sh; carry .gpu_carry from make_gpu_carry.py --latency-only).
#   bash experiments/gpu_checks/e2e_tiled_minilm.sh   (writes under $OUT)
set -u
export PYTHONPATH=$PWD
python3 -m jsparse._gpu.sparse_mma build > /dev/null 2>&1
SECONDS=0
timeout 200 python3 -P experiments/models/mlp_block.py $OUT/mlp-tiled --variants dense,tiled-70%,tiled-90% --tokens 1,8,16,32 > $OUT/mlp.log 2>&1
echo "mlp rc $? at $SECONDS s"; tail -20 $OUT/mlp-tiled/mlp_block.md
MINILM_LIMIT=$((560 - SECONDS)) MINILM_VARIANTS=dense,2:4,2:4-sparse-cores,block64x64-50%,block64x64-80%,tiled-70%,tiled-90% bash experiments/gpu_checks/models.sh $OUT/minilm > $OUT/minilm.log 2>&1
echo "minilm rc $? at $SECONDS s"; tail -15 $OUT/minilm/gpu_bench.log
