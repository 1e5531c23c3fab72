"""Activation sparsity of MiniLM on the fixed sentences, and what skipping zeros would buy.

Profiles the fraction of |GELU output| <= t in each of the six MLPs (jsparse.nn.activation_profile)
on the 48 sentences of experiments/models/sentences.py (joined, in windows of 128 tokens),
then times, at each measured density, a sparse-input matmul (activations [tokens, 1536] as CSR,
times the dense [1536, 384] output projection, one jsparse.spmm) against the dense matmul.

  python -P experiments/models/activation_sparsity.py OUTDIR [--tokens 256]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jsparse  # noqa: E402
from experiments.models import minilm  # noqa: E402
from experiments.models.sentences import SENTENCES  # noqa: E402
from jsparse.nn.activation_profile import profile_activations  # noqa: E402

THRESHOLDS = (0.0, 1e-3, 1e-2, 1e-1)


def best_time(fn, *args, repeats: int = 3) -> float:
  fn(*args).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(*args).block_until_ready()
    times.append(time.perf_counter() - start)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--tokens", type=int, default=256)
  parser.add_argument("--windows", type=int, default=2)
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  model = minilm.load()
  tok = minilm.tokenizer()

  # The sentences joined into one text, cut into windows of 128 tokens: real text, one shape
  # (the profile runs eagerly, and every new shape would compile every op again).
  ids, _ = minilm.tokenize([" ".join(SENTENCES)], tok)
  windows = [ids[:, i:i + 128] for i in range(0, ids.shape[1] - 127, 128)][:args.windows]

  def run(model):
    for window in windows:
      model(jnp.asarray(window))

  stats = profile_activations(model, run, thresholds=THRESHOLDS)
  device = jax.devices()[0]
  env = {"device": getattr(device, "device_kind", device.platform), "jax": jax.__version__,
         "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}
  records = [{**env, "kind": "profile", "site": s.path, "elements": s.size,
              "fraction_below": {str(t): f for t, f in s.fraction_below.items()}} for s in stats]
  rng = np.random.default_rng(0)
  weight = jnp.asarray(rng.standard_normal((1536, 384)) / 40, jnp.float32)
  dense = jax.jit(lambda x, w: x @ w)
  sparse = jax.jit(lambda x, w: jsparse.spmm(x, w))
  fractions = sorted({round(f, 3) for s in stats for f in s.fraction_below.values()})
  for zero_fraction in fractions:
    density = 1.0 - zero_fraction
    values = rng.standard_normal((args.tokens, 1536)).astype(np.float32)
    activations = np.where(rng.random(values.shape) < density, values, 0).astype(np.float32)
    matrix = jsparse.CSR.fromdense(activations)
    records.append({**env, "kind": "matmul", "tokens": args.tokens, "zero_fraction": zero_fraction,
                    "dense_s": best_time(dense, jnp.asarray(activations), weight),
                    "sparse_csr_s": best_time(sparse, matrix, weight)})
    print(records[-1], flush=True)
  (args.outdir / "activation_sparsity.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records))
  for r in records[:len(stats)]:
    print(r["site"], r["fraction_below"])


if __name__ == "__main__":
  main()
