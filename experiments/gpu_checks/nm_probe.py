"""Which launch of the 2:4 per-position-dot kernel is fastest for decoding with several columns
(N = 8, 16), and for prefill (``--plan prefill``)? Times named changes of the default launch side
by side with dense ``jnp.dot``, in one run.

For every weight shape and N (2:4 bfloat16, random values, packed positions): the launch
``jsparse._gpu.structured.nm_config`` picks, then each named change of it (``CHANGES``), split-K
recomputed for the new tiles as the default launch computes it; every result is checked against
a float32 product of the same (rounded) weights before it is timed. Timing is
``structured_bench.time_jax`` (the suite's JaxLoopTimer, operand copies past the L2).

    python3 experiments/gpu_checks/nm_probe.py OUTDIR [--budget-s 300] [--plan refine|joined|prefill|prefill2|prefill3|positions|gather] [--smoke]

Writes OUTDIR/nm_probe.jsonl (one record per launch) and OUTDIR/nm_probe.md, printing each row
as it goes; launches past the budget are listed as skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments.gpu_checks import bench_common, structured_bench  # noqa: E402
from jsparse._gpu import structured  # noqa: E402
from jsparse.formats import NM  # noqa: E402
from jsparse.formats.layout import SparseLayout  # noqa: E402
from pallas_kernels import nm_matmul  # noqa: E402

BF16 = jnp.bfloat16

# name -> changes of the default launch (split-K recomputed afterwards).
CHANGES: dict[str, dict] = {
    "default": {},
    "k128": dict(block_k=128),
    "k256": dict(block_k=256),
    "k256-m32": dict(block_m=32, block_k=256),
    "k128-m128-w8": dict(block_m=128, block_k=128, num_warps=8),
    "k256-w8": dict(block_k=256, num_warps=8),
    "paired": dict(paired_values=True),
    "paired-k128": dict(paired_values=True, block_k=128),
    "paired-k256": dict(paired_values=True, block_k=256),
    "paired-k256-m32": dict(paired_values=True, block_m=32, block_k=256),
    "paired-k128-m128-w8": dict(paired_values=True, block_m=128, block_k=128, num_warps=8),
    "paired-k256-w8": dict(paired_values=True, block_k=256, num_warps=8),
    "paired-k256-no-prefetch": dict(paired_values=True, block_k=256, prefetch=False),
    "paired-k256-s2": dict(paired_values=True, block_k=256, num_stages=2),
    # Round 2 (--plan refine): around paired-k128, the best of round 1 (H100, 2026-11-26).
    "paired-k128-s2": dict(paired_values=True, block_k=128, num_stages=2),
    "paired-k128-s1": dict(paired_values=True, block_k=128, num_stages=1),
    "paired-k128-m32": dict(paired_values=True, block_k=128, block_m=32),
    "paired-k128-w2": dict(paired_values=True, block_k=128, num_warps=2),
    "paired-k128-splits-x2": dict(paired_values=True, block_k=128, splits_scale=2),
    "paired-k128-splits-half": dict(paired_values=True, block_k=128, splits_scale=0.5),
}
# Round 3 (--plan joined): the per-position tiles joined into one dense tile, one dot a step.
JOINED = dict(paired_values=True, joined_tile=True)
CHANGES.update({
    "joined-k128": dict(JOINED, block_k=128),
    "joined-k128-s2": dict(JOINED, block_k=128, num_stages=2),
    "joined-k128-w2": dict(JOINED, block_k=128, num_warps=2),
    "joined-k128-no-prefetch": dict(JOINED, block_k=128, prefetch=False),
    "joined-k128-splits-half": dict(JOINED, block_k=128, splits_scale=0.5),
    "joined-k256": dict(JOINED, block_k=256),
    "joined-k256-s2": dict(JOINED, block_k=256, num_stages=2),
    "joined-k64": dict(JOINED, block_k=64),
    "joined-k128-m128-w8": dict(JOINED, block_k=128, block_m=128, num_warps=8),
    "joined-k128-m32": dict(JOINED, block_k=128, block_m=32),
})
# Prefill (--plan prefill, N >= 1024): the same two changes on the prefill launch (128 x 64
# steps, 256 columns, 8 warps): m dots of K = 16 become one of K = block_k.
CHANGES.update({
    "pf-paired": dict(paired_values=True),
    "pf-joined": dict(JOINED),
    "pf-joined-k128": dict(JOINED, block_k=128),
    "pf-joined-n128": dict(JOINED, block_n=128),
    "pf-joined-k128-n128": dict(JOINED, block_k=128, block_n=128),
    "pf-joined-n128-w4": dict(JOINED, block_n=128, num_warps=4),
    "pf-joined-s4": dict(JOINED, num_stages=4),
    "pf-joined-s2": dict(JOINED, num_stages=2),
    "pf-joined-no-prefetch": dict(JOINED, prefetch=False),
    # Round 2 of prefill (H100 round 1: paired values alone best, 7-24% under the default).
    "pf-paired-k128": dict(paired_values=True, block_k=128),
    "pf-paired-s4": dict(paired_values=True, num_stages=4),
    "pf-paired-k128-s4": dict(paired_values=True, block_k=128, num_stages=4),
    "pf-paired-k128-s2": dict(paired_values=True, block_k=128, num_stages=2),
    "pf-paired-n128-w4": dict(paired_values=True, block_n=128, num_warps=4),
    "pf-paired-m64-w4": dict(paired_values=True, block_m=64, num_warps=4),
    # Round 3 of prefill (--plan prefill3): around the new default (64-row tiles, 4 warps).
    "pf3-k128": dict(block_k=128),
    "pf3-k128-s2": dict(block_k=128, num_stages=2),
    "pf3-s4": dict(num_stages=4),
    "pf3-n128": dict(block_n=128),
    "pf3-m32": dict(block_m=32),
    "pf3-m128-w8": dict(block_m=128, num_warps=8),
})
# Round 5 (--plan positions): the decoding default on byte positions (a group's two read as one
# uint16, 2 bytes a group) instead of packed words (1/2 byte a group, gathered per group).
CHANGES["default-uint8"] = {}
POSITIONS_PLAN = ["default", "default-uint8"]
# Round 6 (--plan gather): the N = 1 gather's tiles and K slices.
CHANGES.update({
    "gather-splits-half": dict(splits_scale=0.5),
    "gather-splits-x2": dict(splits_scale=2),
    "gather-m32": dict(block_m=32),
    "gather-m128": dict(block_m=128),
    "gather-m128-w8": dict(block_m=128, num_warps=8),
    "gather-k256": dict(block_k=256),
    "gather-k64-m128": dict(block_k=64, block_m=128),
    "gather-w2": dict(num_warps=2),
})
# Rounds 7 and 8 (--plan permute / permute2, stop 22) timed ``byte_permute`` (the per-position
# tiles built by prmt through inline PTX), removed after them: no gain
# (experiments/results/h100-2026-11-26-nm-permute; the code at c8df61e).
GATHER_PLAN = ["default"] + [key for key in CHANGES if key.startswith("gather-")]
PREFILL_PLAN = ["default"] + [key for key in CHANGES
                             if key.startswith("pf-") and not key.startswith("pf-paired-")]
PREFILL2_PLAN = ["default", "pf-paired"] + [key for key in CHANGES if key.startswith("pf-paired-")]
PREFILL3_PLAN = ["default"] + [key for key in CHANGES if key.startswith("pf3-")]
JOINED_PLAN = ["paired-k128", "paired-k128-s2", "paired-k128-splits-half"] + [
    key for key in CHANGES if key.startswith("joined-")]

# Round 2 also timed split-K by atomic adds (nm_matmul's atomic_splits at b1be33a, removed:
# slower on 4096x4096) and round 4 packed words repeated with joins (joined_codes at af30dcb,
# removed: slower everywhere); see experiments/results/h100-h200-2026-11-26-nm-decode.
REFINE = ["default", "paired-k128", "paired-k128-s2", "paired-k128-s1", "paired-k128-m32",
          "paired-k128-w2", "paired-k128-splits-x2", "paired-k128-splits-half", "paired-k256-s2"]


def launch(shape: tuple[int, int], n: int, name: str) -> nm_matmul.NmMatmulConfig:
  """The default launch for (shape, N) with the named change, split-K recomputed (and scaled by
  the change's ``splits_scale``)."""
  changes = dict(CHANGES[name])
  scale = changes.pop("splits_scale", 1)
  config = dataclasses.replace(
      structured.nm_config(SparseLayout("nm", shape, nm=(2, 4)), n), **changes)
  splits = structured.decode_splits(-(-shape[0] // config.block_m),
                                    -(-shape[1] // config.block_k))
  if n > 32:  # prefill: no split-K
    return config
  return dataclasses.replace(config, num_splits=max(1, int(splits * scale)))


def plan(smoke: bool, name: str = "sweep") -> list[tuple[tuple[int, int], int, list[str]]]:
  """(shape, N, launch names) in priority order."""
  if smoke:
    return [((64, 512), 16, ["default", "paired", "paired-k256",
                             "joined-k128"]), ((64, 512), 8, ["default", "default-uint8"]),
            ((64, 512), 1, ["default", "gather-m32"]),
            ((64, 256), 64, ["default", "pf-joined"])]
  wide, square, tall = (4096, 14336), (4096, 4096), (14336, 4096)
  first_round = list(CHANGES)[:list(CHANGES).index("paired-k128-s2")]
  if name == "gather":
    return [(shape, 1, GATHER_PLAN) for shape in (tall, wide, square)]
  if name == "positions":
    return [(shape, n, POSITIONS_PLAN) for n in (16, 8) for shape in (wide, tall, square)]
  if name in ("prefill", "prefill2", "prefill3"):
    names = {"prefill": PREFILL_PLAN, "prefill2": PREFILL2_PLAN, "prefill3": PREFILL3_PLAN}[name]
    return [(square, 1024, names), (tall, 1024, names), (square, 4096, names),
            (wide, 1024, names)]
  names = {"refine": REFINE, "joined": JOINED_PLAN}.get(name, first_round)
  return [(shape, n, names) for n in (16, 8) for shape in (wide, tall, square)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--budget-s", type=float, default=300.0)
  parser.add_argument("--smoke", action="store_true", help="tiny shapes, interpret mode")
  parser.add_argument("--plan", default="sweep",
                      choices=("sweep", "refine", "joined", "prefill", "prefill2", "prefill3",
                               "positions", "gather"),
                      help="decoding rounds 1-3 (sweep, refine, joined), the prefill launches "
                      "(N >= 1024; three rounds), byte positions, or the N = 1 gather's tiles")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(dtype="bfloat16", pattern="2:4", plan=args.plan)
  print(json.dumps(meta), flush=True)
  header = ("| W | N | launch | config | us | dense us | dense/this | W GB/s | rel err |\n"
            "|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "nm_probe", "2:4 decoding launches", meta, header)
  start, dense_cache = time.monotonic(), {}
  key = jax.random.key(0)
  matrices = {}
  for shape, n, names in plan(args.smoke, args.plan):
    if shape not in matrices:
      values = jax.random.normal(jax.random.fold_in(key, shape[0] * 7 + shape[1]), shape)
      matrix = NM.fromdense(values.astype(BF16), n=2, m=4)
      # One weight at a time (plan cases of a shape are consecutive): frees the last one.
      matrices = {shape: (matrix, matrix.todense().astype(jnp.float32))}
    matrix, dense = matrices[shape]
    x = jax.random.normal(jax.random.fold_in(key, n), (shape[1], n)).astype(BF16)
    expected = jnp.dot(dense, x.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
    def weight_bytes_of(name):
      positions = matrix.indices if name.endswith("-uint8") else matrix.packed_indices
      return sum(int(a.size) * a.dtype.itemsize for a in (matrix.data, positions))
    weight_bytes = weight_bytes_of("default")
    working_set = weight_bytes + x.size * 2 + shape[0] * n * 2
    if (shape, n) not in dense_cache:
      dense_w = dense.astype(BF16)
      dense_cache[(shape, n)], _ = structured_bench.time_jax(
          bench_common.dense_bf16,
          (dense_w, x), dense_w.size * 2 + x.size * 2 + shape[0] * n * 2, config)
      del dense_w
    dense_us = dense_cache[(shape, n)]["median_us"]
    for name in names:
      chosen = launch(shape, n, name)
      packed = not name.endswith("-uint8")
      record = {"shape": shape, "n": n, "launch": name, "config": dataclasses.asdict(chosen),
                "dense": dense_cache[(shape, n)], "weight_bytes": weight_bytes_of(name),
                "indices_packed": packed}
      fn = lambda a, v, chosen=chosen, packed=packed: nm_matmul.kernel_fn(
          a.data, a.packed_indices if packed else a.indices, v, shape=a.shape, nm=(2, 4),
          config=chosen, indices_packed=packed, interpret=args.smoke)
      bench_common.time_checked(record, fn, (matrix, x), working_set, config, expected,
                                skip=time.monotonic() - start > args.budget_s)
      short = {k: v for k, v in record["config"].items()
               if v != getattr(nm_matmul.NmMatmulConfig, k)}
      table.add(record, f"| {shape[0]}x{shape[1]} | {n} | {name} | {short} | "
                + bench_common.result_cells(record, dense_us, record["weight_bytes"]))


if __name__ == "__main__":
  main()
