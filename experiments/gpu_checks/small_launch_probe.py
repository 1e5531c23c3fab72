"""Two costs that ``loop_overhead_probe`` found on small CSR problems (the DLMC subset), timed:

- ``--part product``: SDDMM's dense path multiplies ``X @ Y.T`` with the Pallas
  ``dense_product.product_nt`` (float32 as three TF32 passes). Against XLA's dot at
  ``Precision.HIGHEST`` and with ``DotAlgorithmPreset.TF32_TF32_F32_X3``, float32 and bfloat16,
  on the DLMC shapes and 4096x4096; each checked against a float64 product (max |err| / max |S|).
- ``--part sddmm-dense``: the whole SDDMM dense path (``csr_sddmm_dense.kernel_fn``) on
  4096x4096 uniform patterns with S from XLA's dot and from the Pallas ``product_nt``, and the
  kernels of each traced at one case (``experiments.profiling.loop_profile``).
- ``--part schedule``: the CSR row kernels (SpMM, SDDMM) with the row schedule computed in the
  call (``natural_order=False``, what unbalanced matrices get) and without it (rows launched in
  order), on the DLMC subset's first matrix of each pruning and shape.

    python3 -P experiments/gpu_checks/small_launch_probe.py OUTDIR [--part product schedule sddmm-dense]
        [--budget-s 240] [--smoke]

Writes OUTDIR/small_launch_probe.jsonl and .md.
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
import numpy as np  # noqa: E402

from experiments import problems, profiling, timing  # noqa: E402
from experiments.grid import Case  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from pallas_kernels import csr_sddmm, csr_sddmm_dense, csr_spmm, dense_product  # noqa: E402

DLMC = [f"dlmc/{p}/{s}#0" for p in ("magnitude_pruning", "random_pruning")
        for s in ("512x512", "2048x512", "512x2048")]


def product_ways(dtype, interpret: bool = False) -> dict:
  """name -> fn(x, y): S = X @ Y.T [M, N] float32."""
  ways = {
      "pallas product_nt": lambda x, y: dense_product.product_nt(
          x, y, config=dense_product.choose_config(x.shape[1], x.dtype), interpret=interpret)[
              :x.shape[0], :y.shape[0]],
      "xla default": lambda x, y: jnp.dot(x, y.T, preferred_element_type=jnp.float32),
  }
  if jnp.dtype(dtype) == jnp.float32:
    ways["xla highest"] = lambda x, y: jnp.dot(x, y.T, precision=jax.lax.Precision.HIGHEST,
                                               preferred_element_type=jnp.float32)
    ways["xla tf32x3"] = lambda x, y: jnp.dot(
        x, y.T, precision=jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3,
        preferred_element_type=jnp.float32)
  return ways


def run_products(table, config, smoke, deadline):
  shapes = ([(64, 64, 32)] if smoke else
            [(512, 512, 1024), (512, 512, 128), (2048, 512, 1024), (512, 2048, 1024),
             (4096, 4096, 1024), (4096, 4096, 128), (4096, 4096, 32)])
  rng = np.random.default_rng(0)
  for dtype in (jnp.float32, jnp.bfloat16):
    for m, n, d in shapes:
      x = jnp.asarray(rng.standard_normal((m, d), np.float32), dtype)
      y = jnp.asarray(rng.standard_normal((n, d), np.float32), dtype)
      exact = np.asarray(x, np.float64) @ np.asarray(y, np.float64).T
      for name, fn in product_ways(dtype, interpret=smoke).items():
        if smoke and name.startswith("xla tf32"):
          continue
        record = {"part": "product", "shape": [m, n, d], "dtype": jnp.dtype(dtype).name,
                  "way": name}
        bench_common.time_checked(record, fn, (x, y), (m * d + n * d) * x.dtype.itemsize
                                  + m * n * 4, config, jnp.asarray(exact, jnp.float32),
                                  skip=time.monotonic() > deadline)
        table.add(record, f"| product | {m}x{n}x{d} | {record['dtype']} | {name} | "
                  f"{bench_common.time_cell(record)} | {bench_common.rel_err_cell(record)} |")


def sddmm_expected(offsets, cols, x, y):
  """float32 X[i] . Y[j] at every stored (i, j) of the CSR pattern."""
  rows = np.repeat(np.arange(offsets.shape[0] - 1), np.diff(np.asarray(offsets)))
  return jnp.sum(x[rows] * y[np.asarray(cols)], axis=1)


def run_sddmm_dense(table, config, smoke, deadline, outdir):
  xla_product_nt = dense_product.xla_product_nt

  def pallas_product_nt(x, y, *, interpret=False):
    tiles = dense_product.choose_config(x.shape[1], x.dtype)
    return dense_product.product_nt(x, y, config=tiles, interpret=interpret)

  grid = ([(0.5, 32)] if smoke else [(0.5, 128), (0.7, 128), (0.5, 1024), (0.5, 32)])
  source = "uniform/64x64" if smoke else "uniform/4096x4096"
  for sparsity, inner in grid:
    problem = problems.build_problem(Case("sddmm", "csr", source, sparsity, inner, "float32"))
    matrix = problem.matrix
    cols, offsets = matrix.col_indices, matrix.row_offsets
    x, y = (jnp.asarray(a) for a in problem.operands)
    expected = sddmm_expected(offsets, cols, x, y)
    for name, product in (("xla", xla_product_nt), ("pallas", pallas_product_nt)):
      dense_product.xla_product_nt = product  # what csr_sddmm_dense.kernel_fn calls
      jax.clear_caches()  # kernel_fn is jitted: retrace it with this product
      fn = jax.jit(lambda c, o, x, y: csr_sddmm_dense.kernel_fn(  # noqa: E731
          c, o, x, y, num_rows=matrix.shape[0], interpret=smoke))
      record = {"part": "sddmm-dense", "sparsity": sparsity, "inner": inner, "product": name}
      bench_common.time_checked(record, fn, (cols, offsets, x, y), 1 << 20, config, expected,
                                skip=time.monotonic() > deadline)
      if not smoke and (sparsity, inner) == (0.5, 128):
        record["profile"] = profiling.loop_profile(
            timing.JaxLoopTimer(fn, [(cols, offsets, x, y)]), outdir / f"trace-{name}")
      table.add(record, f"| sddmm dense path | {source} s={sparsity} D={inner} | float32 | "
                f"S by {name} | {bench_common.time_cell(record)} | "
                f"{bench_common.rel_err_cell(record)} |")
    dense_product.xla_product_nt = xla_product_nt


def run_schedule(table, config, smoke, deadline, wide=False):
  cases = ([Case("spmm", "csr", "uniform/64x64", 0.9, 32, "float32")] if smoke else
           [Case(op, "csr", source, s, n, "float32") for source in DLMC
            for s in (0.5, 0.9, 0.98) for op, n in (("spmm", 32), ("spmm", 128),
                                                    ("sddmm", 32), ("sddmm", 128))])
  if wide and not smoke:
    # Round 2: N = 1024, where the harness saw two cases slower in row order; each launch
    # timed twice, alternating.
    cases = [Case("spmm", "csr", source, s, 1024, "float32")
             for source, s in (("dlmc/random_pruning/512x512#0", 0.95),
                               ("dlmc/magnitude_pruning/512x2048#0", 0.9),
                               ("dlmc/random_pruning/2048x512#0", 0.95),
                               ("dlmc/random_pruning/512x512#0", 0.8),
                               ("dlmc/magnitude_pruning/2048x512#0", 0.9))]
  for case in cases:
    problem = problems.build_problem(case)
    matrix = problem.matrix
    data, cols, offsets = matrix.data, matrix.col_indices, matrix.row_offsets
    num_rows = matrix.shape[0]
    if case.op == "spmm":
      (b,) = problem.operands
      b = jnp.asarray(b)
      expected = jnp.dot(jnp.asarray(matrix.todense()), b, precision=jax.lax.Precision.HIGHEST)
      operands = (data, cols, offsets, b)
      make = lambda natural: (lambda d, c, o, b: csr_spmm.kernel_fn(  # noqa: E731
          d, c, o, b, num_rows=num_rows, natural_order=natural, interpret=smoke))
    else:
      x, y = (jnp.asarray(a) for a in problem.operands)
      expected = sddmm_expected(offsets, cols, x, y)
      operands = (cols, offsets, x, y)
      make = lambda natural: (lambda c, o, x, y: csr_sddmm.kernel_fn(  # noqa: E731
          c, o, x, y, num_rows=num_rows, natural_order=natural, interpret=smoke))
    for natural in (False, True, False, True) if wide else (False, True):
      record = {"part": "schedule", "case": dataclasses.asdict(case), "natural_order": natural,
                "nnz": int(matrix.nnz)}
      bench_common.time_checked(record, make(natural), operands, 1 << 20, config, expected,
                                skip=time.monotonic() > deadline)
      table.add(record, f"| {case.op} | {case.source} s={case.sparsity} N={case.n} | float32 | "
                f"{'natural order' if natural else 'scheduled'} | "
                f"{bench_common.time_cell(record)} | {bench_common.rel_err_cell(record)} |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--part", nargs="+", default=["product", "schedule"],
                      choices=("product", "schedule", "schedule-wide", "sddmm-dense"))
  parser.add_argument("--budget-s", type=float, default=240.0)
  parser.add_argument("--smoke", action="store_true", help="tiny shapes, interpret mode")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(parts=args.part)
  print(json.dumps(meta), flush=True)
  header = "| part | case | dtype | way | us | rel err |\n|---|---|---|---|---|---|"
  table = bench_common.ProbeTable(args.outdir, "small_launch_probe", "small CSR launches", meta,
                                  header)
  deadline = time.monotonic() + args.budget_s
  if "product" in args.part:
    run_products(table, config, args.smoke, deadline)
  if "schedule" in args.part:
    run_schedule(table, config, args.smoke, deadline)
  if "schedule-wide" in args.part:
    run_schedule(table, config, args.smoke, deadline, wide=True)
  if "sddmm-dense" in args.part:
    run_sddmm_dense(table, config, args.smoke, deadline, args.outdir)


if __name__ == "__main__":
  main()
