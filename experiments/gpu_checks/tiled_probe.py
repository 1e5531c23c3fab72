"""Which launch of the tiled-bitmap SpMM is fastest? Times kernel configurations and tile shapes
side by side on the decoding shapes of issue 8, beside dense ``jnp.dot``, in one run.

For every weight shape, sparsity, tile shape and N (bfloat16, random values, uniform random
pattern): the launch ``jsparse._gpu.structured.tiled_config`` picks, then each named change of
it (``CHANGES``), every result checked against a float32 product before it is timed. Timing is
``structured_bench.time_jax`` (the suite's JaxLoopTimer, operand copies past the L2).

    python3 experiments/gpu_checks/tiled_probe.py OUTDIR [--budget-s 200] [--plan PLAN]
        [--smoke]

Writes OUTDIR/tiled_probe.jsonl (one record per launch) and OUTDIR/tiled_probe.md, printing each
row as it goes; launches past the budget are listed as skipped.
"""

from __future__ import annotations

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
from jsparse.formats import Tiled  # noqa: E402
from pallas_kernels import tiled_gather, tiled_spmm  # noqa: E402

BF16 = jnp.bfloat16

# name -> change of the default launch (a function of it).
CHANGES = {
    "default": lambda c: c,
    "scan": lambda c: dataclasses.replace(c, ranks="scan", pipelined=False),
    "w2": lambda c: dataclasses.replace(c, num_warps=2),
    "w8": lambda c: dataclasses.replace(c, num_warps=8),
    "splits-x2": lambda c: dataclasses.replace(c, num_splits=2 * c.num_splits),
    "splits-half": lambda c: dataclasses.replace(c, num_splits=max(1, c.num_splits // 2)),
    "stages-1": lambda c: dataclasses.replace(c, num_stages=1),
    "w4": lambda c: dataclasses.replace(c, num_warps=4),
    # Software pipelining by hand: words two tiles ahead, the next tile's gather before the dot.
    "pipelined": lambda c: dataclasses.replace(c, pipelined=True),
    "pipelined-w4": lambda c: dataclasses.replace(c, pipelined=True, num_warps=4),
    "pipelined-splits-x2": lambda c: dataclasses.replace(c, pipelined=True,
                                                         num_splits=2 * c.num_splits),
    # Reads for elements whose bit is clear: none (masked lanes) or beside the present ones.
    "masked": lambda c: dataclasses.replace(c, absent_reads="masked"),
    "neighbour": lambda c: dataclasses.replace(c, absent_reads="neighbour"),
    "pipelined-masked": lambda c: dataclasses.replace(c, pipelined=True, absent_reads="masked"),
    "pipelined-neighbour": lambda c: dataclasses.replace(c, pipelined=True,
                                                         absent_reads="neighbour"),
    "pipelined-masked-splits-x2": lambda c: dataclasses.replace(
        c, pipelined=True, absent_reads="masked", num_splits=2 * c.num_splits),
    # N = 1 without a dot: FMAs into per-element float32 sums, one row sum at the end.
    "fma": lambda c: dataclasses.replace(c, block_n=1, fma_products=True),
    "fma-pipelined-masked": lambda c: dataclasses.replace(
        c, block_n=1, fma_products=True, pipelined=True, absent_reads="masked"),
    "fma-neighbour": lambda c: dataclasses.replace(
        c, block_n=1, fma_products=True, pipelined=False, absent_reads="neighbour"),
    "fma-w4": lambda c: dataclasses.replace(c, block_n=1, fma_products=True, num_warps=4),
    "fma-splits-x2": lambda c: dataclasses.replace(c, block_n=1, fma_products=True,
                                                   num_splits=2 * c.num_splits),
    # Prefill (N > 32): wider column tiles expand each W tile for more columns (with a dot).
    "bn128": lambda c: dataclasses.replace(c, block_n=128, fma_products=False),
    "bn128-w8": lambda c: dataclasses.replace(c, block_n=128, num_warps=8,
                                              fma_products=False),
    "bn256-w8": lambda c: dataclasses.replace(c, block_n=256, num_warps=8,
                                              fma_products=False),
    "bn256-w8-s2": lambda c: dataclasses.replace(c, block_n=256, num_warps=8, num_stages=2,
                                                 fma_products=False),
}
# name -> (tile rows a program, chunk, warps) of the gather kernel (tiled_gather: no expansion);
# block_n is N rounded up to a power of two, split-K as the decoding launch picks it.
GATHER = {
    "gather-r1": (1, 32, 2),
    "gather-r2": (2, 32, 2),
    "gather-r4": (4, 32, 4),
    "gather-r2-c16": (2, 16, 2),
    "gather-r2-w4": (2, 32, 4),
    # One warp: no cross-warp sums, so maybe no shared memory and a full-size L1 for X.
    "gather-r1-w1": (1, 32, 1),
    "gather-r2-w1": (2, 32, 1),
}


def gather_launch(name: str, shape, tile_shape, n: int) -> tiled_gather.TiledGatherConfig:
  tile_rows, chunk, warps = GATHER[name]
  row_blocks = -(-shape[0] // (tile_shape[0] * tile_rows))
  splits = structured.decode_splits(row_blocks, -(-shape[1] // tile_shape[1]))
  return tiled_gather.TiledGatherConfig(block_n=1 << (n - 1).bit_length(), tile_rows=tile_rows,
                                        chunk=chunk, num_splits=splits, num_warps=warps)

# --plan: name -> what it compares.
PLANS = {
    "decode": "launch changes at decoding (N <= 32)",
    "prefill": "prefill launches on MiniLM's layers (N >= 128)",
    "gather": "the gather kernel against the expanding one (decoding)",
    "gather-warps": "the gather kernel on one or two warps (N = 1)",
    "pipeline": "the hand-pipelined loop against the default (decoding)",
    "absent": "reads of absent elements, with and without pipelining (decoding)",
    "prefill-absent": "reads of absent elements at prefill",
    "fma": "FMA products against the dot at N = 1",
}


# (shape, sparsity, tile shape, N, changes), in priority order.
def plan(smoke: bool, name: str = "decode") -> list[tuple]:
  if smoke:
    return [((64, 256), 0.7, (16, 64), 8, ["default", "scan", "gather-r2"])]
  if name == "gather-warps":
    wide = (4096, 14336)
    return [(wide, sparsity, (16, 64), 1, ["default", "gather-r2", "gather-r1-w1",
                                           "gather-r2-w1"]) for sparsity in (0.7, 0.5, 0.9)]
  if name == "gather":
    wide, tall = (4096, 14336), (14336, 4096)
    every = ["default"] + list(GATHER)
    best = ["default", "gather-r2"]
    return ([(wide, 0.7, (16, 64), n, every) for n in (1, 16)]
            + [(tall, 0.7, (16, 64), 1, every)]
            + [(shape, sparsity, (16, 64), n, best) for sparsity in (0.5, 0.9, 0.3)
               for shape in (wide, tall) for n in (1, 8, 16)])
  if name == "pipeline":
    wide, tall = (4096, 14336), (14336, 4096)
    both = ["default", "pipelined"]
    return ([(shape, 0.7, (16, 64), 16, ["default", "pipelined", "pipelined-w4",
                                         "pipelined-splits-x2"]) for shape in (wide, tall)]
            + [(wide, 0.7, (16, 32), 16, both), (wide, 0.7, (32, 64), 16, both + ["pipelined-w4"])]
            + [(shape, 0.7, (16, 64), n, both) for n in (1, 8, 32) for shape in (tall, wide)]
            + [(tall, sparsity, (16, 64), 16, both) for sparsity in (0.5, 0.9)])
  if name == "absent":
    wide, tall = (4096, 14336), (14336, 4096)
    reads = ["default", "masked", "neighbour"]
    piped = ["pipelined", "pipelined-masked", "pipelined-neighbour", "pipelined-masked-splits-x2"]
    return ([(shape, 0.7, (16, 64), 16, reads + piped) for shape in (tall, wide)]
            + [(wide, 0.7, (16, 32), 16, ["pipelined", "pipelined-masked",
                                          "pipelined-neighbour"])]
            + [(tall, 0.7, (16, 32), 16, reads + ["pipelined-masked"])]
            + [(shape, 0.7, (16, 64), n, reads + ["pipelined-masked"]) for n in (1, 32)
               for shape in (tall, wide)]
            + [(tall, sparsity, (16, 64), 16, reads) for sparsity in (0.5, 0.9)])
  if name == "fma":
    wide, tall = (4096, 14336), (14336, 4096)
    every = ["default", "fma", "fma-pipelined-masked", "fma-neighbour", "fma-w4", "fma-splits-x2"]
    return ([(shape, 0.7, (16, 64), 1, every + (["gather-r2"] if shape == wide else []))
             for shape in (tall, wide)]
            + [(tall, 0.7, (16, 32), 1, ["default", "fma", "fma-neighbour"])]
            + [(shape, sparsity, (16, 64), 1, ["default", "fma", "fma-neighbour", "gather-r2"])
               for sparsity in (0.5, 0.9) for shape in (tall, wide)])
  if name == "prefill-absent":
    reads = ["default", "neighbour", "masked"]
    return [((1536, 384), 0.7, (16, 64), 4096, reads), ((384, 1536), 0.7, (16, 64), 4096, reads),
            ((1536, 384), 0.7, (16, 64), 128, reads), ((4096, 4096), 0.7, (16, 64), 1024, reads)]
  if name == "prefill":
    # MiniLM's layer shapes ([out, in]) at its token counts, then a larger square weight.
    prefill = ["default", "bn128", "bn128-w8", "bn256-w8", "bn256-w8-s2"]
    return [((1536, 384), 0.7, (16, 64), 4096, prefill),
            ((384, 1536), 0.7, (16, 64), 4096, prefill),
            ((384, 384), 0.7, (16, 64), 4096, prefill),
            ((1536, 384), 0.7, (16, 64), 128, prefill[:3]),
            ((4096, 4096), 0.7, (16, 64), 1024, prefill)]
  wide, tall = (4096, 14336), (14336, 4096)
  everything = list(CHANGES)
  return [
      (wide, 0.7, (16, 64), 16, everything),
      (tall, 0.7, (16, 64), 16, ["default", "w4", "splits-x2"]),
      (wide, 0.7, (32, 64), 16, ["default", "w4"]),
      (wide, 0.7, (16, 64), 1, ["default", "w4"]),
      (wide, 0.7, (16, 64), 32, ["default", "w4"]),
  ]


def weights(key, shape, sparsity, tile_shape):
  value_key, keep_key = jax.random.split(key)
  values = jax.random.normal(value_key, shape, jnp.float32)
  dense = jnp.where(jax.random.uniform(keep_key, shape) >= sparsity, values, 0).astype(BF16)
  matrix = Tiled.fromdense(dense, tile_shape=tile_shape)
  return matrix, dense


def main() -> None:
  args = bench_common.probe_arguments(__doc__, lambda parser: parser.add_argument(
      "--plan", choices=tuple(PLANS), default="decode",
      help="; ".join(f"{name}: {what}" for name, what in PLANS.items())))
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(dtype="bfloat16", plan=args.plan)
  print(json.dumps(meta), flush=True)
  header = ("| W | sparsity | tile | N | launch | config | us | dense us | dense/this | W GB/s |"
            " rel err |\n|---|---|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "tiled_probe", "Tiled SpMM launches", meta, header)
  start, dense_cache = time.monotonic(), {}
  key = jax.random.key(0)
  for shape, sparsity, tile_shape, n, names in plan(args.smoke, args.plan):
    matrix, dense = weights(jax.random.fold_in(key, hash((shape, sparsity)) % 1000), shape,
                            sparsity, tile_shape)
    x = jax.random.normal(jax.random.fold_in(key, n), (shape[1], n)).astype(BF16)
    expected = jnp.dot(dense.astype(jnp.float32), x.astype(jnp.float32),
                       precision=jax.lax.Precision.HIGHEST)
    def nbytes(*arrays):
      return sum(int(a.size) * a.dtype.itemsize for a in arrays)
    # What each kernel reads of W: the expanding one the bitmaps, the gather one the columns.
    expand_bytes = nbytes(matrix.data, matrix.bitmaps, matrix.row_offsets)
    gather_bytes = nbytes(matrix.data, matrix.value_columns, matrix.row_offsets)
    working_set = max(expand_bytes, gather_bytes) + x.size * 2 + shape[0] * n * 2
    if (shape, n) not in dense_cache:
      dense_cache[(shape, n)], _ = structured_bench.time_jax(
          bench_common.dense_bf16,
          (dense, x), dense.size * 2 + x.size * 2 + shape[0] * n * 2, config)
    dense_us = dense_cache[(shape, n)]["median_us"]
    base = structured.tiled_config(matrix.layout, n)
    for name in names:
      launch = (gather_launch(name, shape, tile_shape, n) if name in GATHER
                else CHANGES[name](base))
      weight_bytes = gather_bytes if name in GATHER else expand_bytes
      record = {"shape": shape, "sparsity": sparsity, "tile_shape": tile_shape, "n": n,
                "launch": name, "config": dataclasses.asdict(launch), "dense": dense_cache[
                    (shape, n)], "weight_bytes": weight_bytes}
      if name in GATHER:
        fn = lambda a, v, launch=launch: tiled_gather.kernel_fn(
            a.data, a.value_columns, a.bitmaps, a.row_offsets, v, shape=a.shape,
            config=launch, interpret=args.smoke)
      else:
        fn = lambda a, v, launch=launch: tiled_spmm.kernel_fn(
            a.data, a.bitmaps, a.row_offsets, v, shape=a.shape, config=launch,
            interpret=args.smoke)
      bench_common.time_checked(record, fn, (matrix, x), working_set, config, expected,
                                skip=time.monotonic() - start > args.budget_s)
      short = {k: v for k, v in record["config"].items() if k != "ranks" or v != "popc"}
      table.add(record, f"| {shape[0]}x{shape[1]} | {sparsity} | {tile_shape[0]}x{tile_shape[1]} "
                f"| {n} | {name} | {short} | "
                + bench_common.result_cells(record, dense_us, weight_bytes))


if __name__ == "__main__":
  main()
