"""The CUDA-core tiled kernel (``jsparse._gpu.tiled_gemv.gemv``) against the tensor-core one
(``sparse_mma.tiled_matmul``) and dense, for 1-4 columns; every launch checked first.

1. Checks the default launch and ``CHECK_CONFIGS`` against a float64 product on
   ragged shapes (M not a multiple of 16, K not of 64, one row, empty rows, an all-zero matrix),
   N = 1..4, bfloat16 and float16 (``checks.md``).
2. Times, by device kernel time per call (``experiments.kernel_time``; one copy of the operands,
   so this ranks launches: ``structured_bench.py`` gives the reported numbers), weights
   4096x14336 and 14336x4096 at ``--sparsities`` and ``--columns``: dense ``jnp.dot``, the
   tensor-core kernel's default launch and each gemv launch (``tiled_gemv.md``).

    python3 -P experiments/gpu_checks/tiled_gemv_probe.py OUTDIR [--budget-s 300]
        [--sparsities 0.7,0.9] [--columns 1,2,4] [--configs default-g,2-16-1-h]
        [--no-checks]

(``--configs``: ``parse_config``'s specs.)
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.gpu_checks.tiled_mma_probe import (  # noqa: E402
    TOLERANCE, CheckTable, check_cases, timing_cases)
from jsparse._gpu import sparse_mma, tiled_gemv  # noqa: E402

Config = tiled_gemv.TiledGemvConfig
CONFIGS = "default,1-32-1-h,1-16-1-h,1-8-1-h,1-16-1-g,4-16-1-f,2-16-1-h"
SHAPES = ((4096, 14336), (14336, 4096))
SPARSITIES = (0.7, 0.5, 0.9)
COLUMNS = (1, 2, 4)
CHECK_CONFIGS = ("default", "default-g", "1-1-1", "3-3-2-h", "2-4-5", "16-16-1-h",
                 "1-16-2-g", "1-32-1-h")
# A spec's flags: x's source.
FLAGS = {"h": ("x_source", "16-bit"), "f": ("x_source", "float32"), "g": ("x_source", "global")}
CHECK_SHAPES = ((40, 100), (1, 64), (33, 4480), (300, 1000), (16, 64), (17, 2))


def parse_config(spec: str):
  """``m_tiles-warps-k_splits[-FLAG...]`` (x staged float32 unless a flag says otherwise) or
  ``default[-FLAG...]`` (``default_config`` with the flags' fields replaced): a function of
  (n, m, k) giving the launch. FLAGs (``FLAGS``): h / f / g x staged 16-bit / float32 / read
  from global memory. Raises KeyError for an unknown flag."""
  head, *flags = spec.split("-") if spec.startswith("default") else [
      "-".join(spec.split("-")[:3]), *spec.split("-")[3:]]
  fields = dict(FLAGS[flag] for flag in flags)
  if head == "default":
    def resolve(n, m, k):
      return dataclasses.replace(tiled_gemv.default_config(n, m, k), **fields)
  else:
    m_tiles, warps, k_splits = map(int, head.split("-"))
    config = Config(m_tiles, warps, k_splits, **fields)
    resolve = lambda n, m, k: config  # noqa: E731
  resolve.label = spec
  return resolve


def describe(config) -> str:
  """A launch's fields, short: m_tiles-warps-k_splits-x_source."""
  return f"{config.m_tiles}-{config.warps}-{config.k_splits}-{config.x_source}"


def run_checks(outdir: pathlib.Path) -> int:
  """The default launch and ``CHECK_CONFIGS`` on ``CHECK_SHAPES`` (the timed launches are
  checked where they are timed)."""
  resolves = tuple(parse_config(c) for c in CHECK_CONFIGS)
  table = CheckTable()
  table.check_all(
      check_cases(np.random.default_rng(0), CHECK_SHAPES, (1, 2, 3, 4),
                  densities=lambda shape: (0.3, 0.0) if shape == CHECK_SHAPES[0] else (0.3,)),
      lambda matrix, n, shape: [c for c in (r(n, *shape) for r in resolves)
                                if c.fits(n, shape[1])],
      lambda matrix, x, shape, config: tiled_gemv.gemv(
          matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=shape, config=config))
  return table.write(outdir)


def arguments(parser) -> None:
  parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
  parser.add_argument("--columns", default=",".join(map(str, COLUMNS)))
  parser.add_argument("--configs", default=CONFIGS)
  parser.add_argument("--no-checks", action="store_true")


def main() -> None:
  args = bench_common.probe_arguments(__doc__, arguments)
  configs = tuple(parse_config(c) for c in args.configs.split(","))
  tiled_gemv.build()
  if not args.no_checks:
    run_checks(args.outdir)
  table = bench_common.kernel_line_table(args.outdir, "tiled_gemv", "tiled gemv launches",
                                         pattern="uniform random, 16x64 tiles")
  deadline = time.monotonic() + args.budget_s
  for sparsity, shape, matrix, w, n, x, expected in timing_cases(
      map(float, args.sparsities.split(",")), SHAPES, tuple(map(int, args.columns.split(",")))):
    operands = (matrix.data, matrix.bitmaps, matrix.row_offsets, x)
    lines = [("dense", bench_common.dense_bf16, (w, x)),
             (f"s{sparsity} tiled_mma",
              lambda d, b, o, v, shape=shape: sparse_mma.tiled_matmul(d, b, o, v, shape=shape),
              operands)]
    for resolve in configs:
      config = resolve(n, *shape)
      if config.fits(n, shape[1]):
        lines.append((f"s{sparsity} gemv {resolve.label} ({describe(config)})",
                      lambda d, b, o, v, c=config, shape=shape: tiled_gemv.gemv(
                          d, b, o, v, shape=shape, config=c),
                      operands))
    bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                   deadline=deadline, tolerance=TOLERANCE)


if __name__ == "__main__":
  main()
