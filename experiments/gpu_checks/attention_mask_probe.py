"""Does the Mosaic GPU block-sparse attention kernel's time depend on *which* key blocks a query
block keeps, at a fixed count? Times ``block_sparse_attention_mgpu.kernel_fn`` (bf16, batch 4,
16 heads, sequence 8192, 128x128 blocks) on masks that keep the same number of key blocks per
query block: all of them, a random half (as the benchmark's masks), the first half (contiguous)
and every other block (strided), with the suite's loop timer; one compilation per head dim (the
masks are operands of the same shapes).

    python3 experiments/gpu_checks/attention_mask_probe.py OUTDIR [--head-dims 64 128]

Writes OUTDIR/attention_mask_probe.jsonl and prints one line per (head dim, mask).
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

from experiments import timing  # noqa: E402
from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention  # noqa: E402

BATCH, HEADS, SEQ, BLOCK = 4, 16, 8192, 128
NB = SEQ // BLOCK


def kept_lists(choose) -> tuple[jax.Array, jax.Array]:
  """int32 (indices [H, NB, max_kept], counts [H, NB]) from choose(rng, query block) -> kept
  blocks, padded with the last kept index to the largest count (as ``BlockMask.from_dense``)."""
  rng = np.random.default_rng(0)
  kept_of = {(h, i): np.sort(np.asarray(choose(rng, i), np.int32))
             for h, i in np.ndindex(HEADS, NB)}
  counts = np.zeros((HEADS, NB), np.int32)
  indices = np.zeros((HEADS, NB, max(kept.size for kept in kept_of.values())), np.int32)
  for (h, i), kept in kept_of.items():
    counts[h, i] = kept.size
    indices[h, i, :kept.size] = kept
    indices[h, i, kept.size:] = kept[-1]
  return jnp.asarray(indices), jnp.asarray(counts)


def random_kept_lists(density: float) -> tuple[jax.Array, jax.Array]:
  """``kept_lists`` of ``round(density * NB)`` (at least one) random key blocks per query block."""
  return kept_lists(lambda rng, i: rng.choice(NB, max(1, round(density * NB)), replace=False))


MASKS = {
    "all": lambda rng, i: np.arange(NB),
    "random half": lambda rng, i: rng.choice(NB, NB // 2, replace=False),
    "first half": lambda rng, i: np.arange(NB // 2),
    "every other": lambda rng, i: np.arange(0, NB, 2),
    "random tenth": lambda rng, i: rng.choice(NB, round(0.1 * NB), replace=False),
    "first tenth": lambda rng, i: np.arange(round(0.1 * NB)),
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--head-dims", nargs="+", type=int, default=[64, 128])
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = timing.TimingConfig(repeats=7, min_repeats=5, min_sample_s=0.02, max_total_s=1.0)
  masks = {name: kept_lists(choose) for name, choose in MASKS.items()}
  device = jax.devices()[0].device_kind
  with (args.outdir / "attention_mask_probe.jsonl").open("w") as out:
    for head_dim in args.head_dims:
      key = jax.random.key(head_dim)
      q, k, v = (jax.random.normal(subkey, (BATCH, SEQ, HEADS, head_dim), jnp.bfloat16)
                 for subkey in jax.random.split(key, 3))
      fn = lambda q, k, v, i, c: mgpu_attention.kernel_fn(  # noqa: E731
          q, k, v, i, c, block_size=(BLOCK, BLOCK), causal=False)
      timer = None
      for name, (indices, counts) in masks.items():
        operands = (q, k, v, indices, counts)
        timer = (timing.JaxLoopTimer(fn, [operands]) if timer is None
                 else timer.with_operands([operands]))
        measured = timer.measure(config)
        kept = float(counts.sum()) / (HEADS * NB * NB)
        record = {"device": device, "head_dim": head_dim, "mask": name, "kept": kept,
                  **measured.asdict()}
        out.write(json.dumps(record) + "\n")
        out.flush()
        print(f"D{head_dim} {name:12s} kept {kept:.3f} {measured.median_us:9.1f} us", flush=True)


if __name__ == "__main__":
  main()
