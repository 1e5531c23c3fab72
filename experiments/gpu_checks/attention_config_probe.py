"""Which launch configuration of the Mosaic GPU block-sparse attention kernel is fastest per mask
density? Times ``block_sparse_attention_mgpu.kernel_fn`` (bf16, batch 4, 16 heads, sequence
8192, 128x128 blocks) under each given configuration on random masks of several densities and
the causal mask, with the suite's loop timer; the first configuration is the reference of the
ratios. Masks as ``attention_mask_probe.py`` (random kept blocks per query block, seed 0).

    python3 experiments/gpu_checks/attention_config_probe.py OUTDIR --head-dims 128 \
        --configs "tiles_per_program=2" "tiles_per_program=2,max_concurrent_steps=3"

Each configuration is ``default_config(head_dim, block_size)`` with the given fields
replaced. ``--alt-module FILE [FILE ...]`` times each configuration again with the kernel module
in each FILE (other versions of ``block_sparse_attention_mgpu.py``, e.g. the last commit's), in
the same process on the same masks; their rows are labelled ``alt1:<config>``, ``alt2:...``.
Writes OUTDIR/attention_config_probe.jsonl; prints one line per (head dim, config, mask) and a
table of time ratios to the first configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import timing  # noqa: E402
from experiments.gpu_checks.attention_mask_probe import (  # noqa: E402
    BATCH, BLOCK, HEADS, NB, SEQ, kept_lists, random_kept_lists)
from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention  # noqa: E402

DENSITIES = (1.0, 0.5, 0.1, 0.05)


def parse_config(text: str) -> dict:
  """"a=1,b=2" -> {"a": 1, "b": 2} (integer fields of MgpuAttentionConfig)."""
  if not text:
    return {}
  return {name: int(value) for name, value in (item.split("=") for item in text.split(","))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--head-dims", nargs="+", type=int, default=[128])
  parser.add_argument("--configs", nargs="+", default=[""],
                      help='field changes of the default config, e.g. "tiles_per_program=2"')
  parser.add_argument("--budget-s", type=float, default=300.0)
  parser.add_argument("--alt-module", type=pathlib.Path, nargs="+", default=[],
                      help="other versions of block_sparse_attention_mgpu.py to time too")
  args = parser.parse_args()
  kernels = {"": mgpu_attention}
  for number, path in enumerate(args.alt_module, 1):
    spec = importlib.util.spec_from_file_location(f"alt{number}_attention_mgpu", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registered first: its dataclasses look it up
    kernels[f"alt{number}:"] = module
  labels = [prefix + (text or "default") for text in args.configs for prefix in kernels]
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.02, max_total_s=0.5)
  masks = {d: random_kept_lists(d) for d in DENSITIES}
  masks["causal"] = kept_lists(lambda rng, i: np.arange(i + 1))
  device = jax.devices()[0].device_kind
  start, times, outputs = time.monotonic(), {}, {}
  with (args.outdir / "attention_config_probe.jsonl").open("w") as out:
    for head_dim in args.head_dims:
      key = jax.random.key(head_dim)
      q, k, v = (jax.random.normal(subkey, (BATCH, SEQ, HEADS, head_dim), jnp.bfloat16)
                 for subkey in jax.random.split(key, 3))
      for text, (prefix, kernel) in ((text, item) for text in args.configs
                                     for item in kernels.items()):
        launch = dataclasses.replace(  # the kernel module's own config class
            kernel.default_config(head_dim=head_dim, block_size=(BLOCK, BLOCK)),
            **parse_config(text))
        timers = {}
        for name, (indices, counts) in masks.items():
          causal = name == "causal"
          operands = (q, k, v, indices, counts)
          record = {"device": device, "head_dim": head_dim,
                    "config": prefix + (text or "default"),
                    "launch": dataclasses.asdict(launch), "mask": str(name),
                    "kept": float(counts.sum()) / (HEADS * NB * NB)}
          if time.monotonic() - start > args.budget_s:
            record["error"] = "skipped: budget spent"
          else:
            try:
              reason = kernel.supports(*operands, block_size=(BLOCK, BLOCK), causal=causal,
                                       config=launch)
              if reason is not True:
                raise ValueError(reason)
              fn = lambda q, k, v, i, c, causal=causal, launch=launch, kernel=kernel: (
                  kernel.kernel_fn(q, k, v, i, c, block_size=(BLOCK, BLOCK), causal=causal,
                                   config=launch))
              # One compilation per causality and kept-list width (the lists are compacted to
              # their largest count, as BlockMask does).
              timer_key = (causal, indices.shape)
              timers[timer_key] = (timing.JaxLoopTimer(fn, [operands])
                                   if timer_key not in timers
                                   else timers[timer_key].with_operands([operands]))
              out_now = timers[timer_key].launch()  # the timer's one-op program
              first = outputs.setdefault((head_dim, str(name)), out_now)
              # Every launch against the first configuration's output (the compiled tests
              # check the kernel against the float64 reference on smaller shapes).
              record["max_abs_diff_vs_first"] = float(jnp.max(jnp.abs(
                  out_now.astype(jnp.float32) - first.astype(jnp.float32))))
              if not np.isfinite(record["max_abs_diff_vs_first"]) or (
                  record["max_abs_diff_vs_first"] > 2e-2):
                raise ValueError(f"output differs from the first configuration's by "
                                 f"{record['max_abs_diff_vs_first']}")
              record.update(timers[timer_key].measure(config).asdict())
              times[(head_dim, record["config"], str(name))] = record["median_us"]
            except Exception as error:  # noqa: BLE001 - record and go on
              record["error"] = f"{type(error).__name__}: {error}"[:300]
          out.write(json.dumps(record) + "\n")
          out.flush()
          print(f"D{head_dim} {record['config']:40s} {str(name):7s} "
                f"{record.get('median_us', float('nan')):9.1f} us {record.get('error', '')}",
                flush=True)
  names = [str(name) for name in masks]
  print("\n| head dim | config | " + " | ".join(names) + " |")
  print("|---|---|" + "---|" * len(names))
  for head_dim in args.head_dims:
    first = labels[0]
    for label in labels:
      cells = []
      for name in names:
        ours, ref = times.get((head_dim, label, name)), times.get((head_dim, first, name))
        cells.append(f"{ours:.1f} ({ours / ref:.2f})" if ours and ref else "-")
      print(f"| {head_dim} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
