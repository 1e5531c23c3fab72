"""Prefill latency of a causal LM with learned block-sparse attention masks, against dense
attention (issue 9, end to end).

The model is the small LM's architecture (``small_lm.py``: byte embeddings and learned positions,
pre-norm ``SparseTransformerBlock``s with ``pattern="learned"``, causal), built at the long
sequence and timed as one jit-compiled forward pass over ``[batch, seq]`` tokens. Each learned
gate keeps 100% / 25% / 12.5% of the causally visible key blocks, so a timed pass includes the
gates' scores, their top-k, building the ``BlockMask`` and the attention kernel
(``impl="auto"``: on a Hopper GPU the Mosaic GPU kernel where it applies, else the Triton one).
The dense baselines are the same model with ``pattern="causal"`` (every visible block, the same
kernel, no gate) and, for attention alone, ``jax.nn.dot_product_attention`` (cuDNN on a GPU)
against the block-sparse op at the learned masks of the same density.

Weights are random: the time does not depend on their values, and a gate keeps the same number
of blocks per query row whatever its weights (the budget follows from the density); only which
blocks are kept differs from a trained model. ``small_lm.py`` trains the model at sequence 256
on the CPU and reports the loss at each density.

    python3 -P experiments/models/lm_prefill.py OUTDIR [--config small|d64|d128] [--seq 8192]

Writes OUTDIR/lm_prefill_<config>.json and .md (device, versions, date, medians).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import jsparse  # noqa: E402
from experiments import timing  # noqa: E402
from jsparse.nn import SparseTransformerBlock  # noqa: E402

DENSITIES = (1.0, 0.25, 0.125)


@dataclasses.dataclass(frozen=True)
class LMConfig:
  """Model shape: ``heads`` query heads of ``width // heads``, mask blocks of ``block``."""

  width: int
  heads: int
  kv_heads: int
  layers: int
  block: int


CONFIGS = {
    # small_lm.py's trained model (head dim 32, 16 x 16 mask blocks: the Triton kernel).
    "small": LMConfig(width=128, heads=4, kv_heads=2, layers=2, block=16),
    # Head dims the Mosaic GPU kernel serves, with 128 x 128 mask blocks.
    "d64": LMConfig(width=1024, heads=16, kv_heads=16, layers=2, block=128),
    "d128": LMConfig(width=2048, heads=16, kv_heads=16, layers=2, block=128),
}


class PrefillLM(nnx.Module):
  """Byte LM: ``[B, S]`` int32 tokens -> ``[B, S, 256]`` logits."""

  def __init__(self, config: LMConfig, *, seq_len: int, pattern: str, density: float,
               dtype, rngs: nnx.Rngs):
    self.tokens = nnx.Embed(256, config.width, dtype=dtype, rngs=rngs)
    self.positions = nnx.Embed(seq_len, config.width, dtype=dtype, rngs=rngs)
    self.blocks = nnx.List([
        SparseTransformerBlock(config.width, config.heads, 4 * config.width,
                               num_kv_heads=config.kv_heads, causal=True, pattern=pattern,
                               block_size=(config.block, config.block), density=density,
                               num_local_blocks=1, gate_dim=16, dtype=dtype, rngs=rngs)
        for _ in range(config.layers)])
    self.norm = nnx.LayerNorm(config.width, dtype=dtype, rngs=rngs)
    self.head = nnx.Linear(config.width, 256, dtype=dtype, rngs=rngs)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    x = self.tokens(tokens) + self.positions(jnp.arange(tokens.shape[1]))[None]
    for block in self.blocks:
      x = block(x)
    return self.head(self.norm(x))


def _timed(fn, operands, config: timing.TimingConfig) -> dict:
  measured = timing.JaxLoopTimer(fn, [operands]).measure(config)
  return {"median_us": measured.median_us, "p10_us": measured.p10_us, "p90_us": measured.p90_us}


def model_lines(config: LMConfig, *, seq: int, batch: int, dtype, timing_config) -> list[dict]:
  """One record per model variant: whole-model prefill time."""
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 256, (batch, seq)), jnp.int32)
  variants = [("causal (every visible block)", "causal", 1.0)]
  variants += [(f"learned {density:g}", "learned", density) for density in DENSITIES]
  records = []
  for name, pattern, density in variants:
    model = PrefillLM(config, seq_len=seq, pattern=pattern, density=density, dtype=dtype,
                      rngs=nnx.Rngs(0))
    model.eval()
    graph, state = nnx.split(model)
    forward = lambda state, tokens, graph=graph: nnx.merge(graph, state)(tokens)  # noqa: E731
    record = {"line": f"model, {name}", "pattern": pattern, "density": density}
    try:
      logits = jax.jit(forward)(state, tokens)
      record["finite"] = bool(jnp.isfinite(logits.astype(jnp.float32)).all())
      record.update(_timed(forward, (state, tokens), timing_config))
    except Exception as error:  # recorded, the other variants go on
      record["error"] = f"{type(error).__name__}: {error}"[:400]
    print(record, flush=True)
    records.append(record)
  return records


def attention_lines(config: LMConfig, *, seq: int, batch: int, dtype, timing_config) -> list[dict]:
  """Attention alone: cuDNN (or XLA) causal vs the block-sparse op at learned masks."""
  head_dim = config.width // config.heads
  keys = jax.random.split(jax.random.key(1), 3)
  q = jax.random.normal(keys[0], (batch, seq, config.heads, head_dim), dtype)
  k = jax.random.normal(keys[1], (batch, seq, config.kv_heads, head_dim), dtype)
  v = jax.random.normal(keys[2], (batch, seq, config.kv_heads, head_dim), dtype)
  records = []
  on_gpu = jax.default_backend() == "gpu"
  implementation = "cudnn" if on_gpu else None
  dense = lambda q, k, v: jax.nn.dot_product_attention(  # noqa: E731
      q, k, v, is_causal=True, implementation=implementation)
  reference = None
  try:
    reference = jax.jit(dense)(q, k, v)
    records.append({"line": f"attention, dense causal ({implementation or 'xla'})",
                    **_timed(dense, (q, k, v), timing_config)})
  except Exception as error:
    records.append({"line": "attention, dense causal", "error": f"{error}"[:400]})
  print(records[-1], flush=True)
  for density in DENSITIES:
    gate = jsparse.nn.LearnedBlockMask(config.heads, config.kv_heads, head_dim,
                                       block_size=(config.block, config.block), density=density,
                                       causal=True, num_local_blocks=1, gate_dim=16,
                                       rngs=nnx.Rngs(2))
    gate.deterministic = True
    masks = gate(q, k)
    mask = jsparse.BlockMask.from_dense(masks[0], block_size=(config.block, config.block),
                                        max_kept=gate.max_kept(seq, seq))
    sparse = lambda q, k, v, mask=mask: jsparse.block_sparse_attention(  # noqa: E731
        q, k, v, mask, causal=True)
    record = {"line": f"attention, learned mask {density:g}", "density": density,
              "kept_blocks": int(np.asarray(mask.kv_block_counts).sum())}
    try:
      out = jax.jit(sparse)(q[:1], k[:1], v[:1])
      if density == 1.0 and reference is not None:
        record["max_abs_diff_vs_dense"] = float(jnp.max(jnp.abs(
            out.astype(jnp.float32) - reference[:1].astype(jnp.float32))))
      record.update(_timed(sparse, (q[:1], k[:1], v[:1]), timing_config))
    except Exception as error:
      record["error"] = f"{type(error).__name__}: {error}"[:400]
    print(record, flush=True)
    records.append(record)
  return records


def markdown(run: dict) -> str:
  lines = [f"# LM prefill with learned block-sparse attention ({run['device']}, {run['date']})",
           "", f"config {run['config_name']}: {run['config']}; batch {run['batch']}, sequence "
           f"{run['seq']}, {run['dtype']}; versions {run['versions']}. JaxLoopTimer medians "
           "(compilation and dispatch excluded). Attention-alone lines run batch 1.", "",
           "| line | median us | p10-p90 | speedup over the group's first line |", "|---|---|---|---|"]
  for group in ("model", "attention"):
    rows = [r for r in run["records"] if r["line"].startswith(group)]
    base = next((r.get("median_us") for r in rows if "median_us" in r), None)
    for r in rows:
      if "median_us" not in r:
        lines.append(f"| {r['line']} | {r.get('error', '-')} | - | - |")
        continue
      ratio = f"{base / r['median_us']:.2f}x" if base else "-"
      lines.append(f"| {r['line']} | {r['median_us']:.1f} | {r['p10_us']:.1f}-{r['p90_us']:.1f}"
                   f" | {ratio} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
  parser.add_argument("--seq", type=int, default=8192)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config, dtype = CONFIGS[args.config], jnp.dtype(args.dtype)
  timing_config = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.01,
                                      max_total_s=1.0)
  common = dict(seq=args.seq, batch=args.batch, dtype=dtype, timing_config=timing_config)
  records = model_lines(config, **common) + attention_lines(config, **common)
  device = jax.devices()[0]
  run = {"experiment": "lm_prefill", "config_name": args.config,
         "config": dataclasses.asdict(config), "seq": args.seq, "batch": args.batch,
         "dtype": args.dtype, "device": getattr(device, "device_kind", device.platform),
         "versions": {"jax": jax.__version__, "flax": __import__("flax").__version__},
         "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "records": records}
  stem = f"lm_prefill_{args.config}"
  (args.outdir / f"{stem}.json").write_text(json.dumps(run, indent=1))
  (args.outdir / f"{stem}.md").write_text(markdown(run))
  print(markdown(run))


if __name__ == "__main__":
  main()
