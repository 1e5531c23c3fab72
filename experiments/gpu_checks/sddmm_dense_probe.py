"""Where does SDDMM through dense tiles beat the row kernel? Times, on 4096x4096 uniform random
patterns, the row kernel (``csr_sddmm``, its default launch), the dense-tile kernel
(``csr_sddmm_dense``: S = X @ Y.T on the tensor cores, then S at the pattern) in a few tile
launches, and XLA's own dense product followed by the same gather (``jnp.dot`` at
``Precision.HIGHEST``, and with the three-pass TF32 algorithm where XLA accepts it), so the
dispatch rule in ``jsparse._gpu.csr`` can be set from measurements. The dense product alone
(no gather) is timed too: the gather's share.

Every output is checked against float64 (S64 = X64 @ Y64.T on the host, sampled) before it is
timed; "rel err" is max |out - S64| / max |S64| over the stored entries. Timing is
``structured_bench.time_jax`` (JaxLoopTimer medians, operand copies past the L2).

    python3 experiments/gpu_checks/sddmm_dense_probe.py OUTDIR [--budget-s 200] [--smoke]

Writes OUTDIR/sddmm_dense_probe.jsonl and .md, printing each row as it goes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks import bench_common, csr_prefetch_probe  # noqa: E402
from pallas_kernels import csr_sddmm, csr_sddmm_dense, dense_product  # noqa: E402

SPARSITIES = (0.5, 0.7, 0.9, 0.95, 0.98, 0.99)
INNER = (32, 128, 1024)


def dense_launches(inner: int, dtype, mean_row: float
                   ) -> dict[str, csr_sddmm_dense.DenseSddmmConfig]:
  """The dense path's launch (S by XLA's dot since stop 22; rounds 1-4 also timed the Pallas
  product's tiles here, see experiments/results/h100-2026-11-26-sddmm-dense/)."""
  return {"dense-default": csr_sddmm_dense.choose_config(mean_row)}


# Tile launches of the dense product alone (block_m, block_n, block_d, num_warps, num_stages).
PRODUCT_LAUNCHES = ((128, 128, 32, 8, 3), (128, 128, 64, 8, 2), (128, 128, 16, 8, 4),
                    (64, 128, 32, 4, 3), (128, 64, 32, 4, 4), (128, 256, 16, 8, 3),
                    (256, 128, 16, 8, 3), (64, 64, 32, 4, 4), (128, 128, 32, 4, 4))


def product_plan(args, dtype, config, emit, start) -> None:
  """Times dense_product.product_nt alone over PRODUCT_LAUNCHES, checked against float64."""
  size = 96 if args.smoke else 4096
  rng = np.random.default_rng(0)
  for inner in ((40,) if args.smoke else (1024, 128)):
    x64, y64 = rng.standard_normal((size, inner)), rng.standard_normal((size, inner))
    x, y = jnp.asarray(x64, dtype), jnp.asarray(y64, dtype)
    expected = jnp.asarray(np.asarray(x.astype(jnp.float32), np.float64)
                           @ np.asarray(y.astype(jnp.float32), np.float64).T, jnp.float32)
    for bm, bn, bd, warps, stages in PRODUCT_LAUNCHES:
      launch = dense_product.ProductConfig(block_m=bm, block_n=bn, block_d=bd,
                                           num_warps=warps, num_stages=stages)
      record = {"sparsity": None, "inner": inner, "line": "product",
                "config": f"{bm}x{bn} bd{bd} w{warps} s{stages}"}
      bench_common.time_checked(
          record, lambda x, y, launch=launch: dense_product.product_nt(
              x, y, config=launch, interpret=args.smoke), (x, y), 2 * x.nbytes, config,
          expected, skip=time.monotonic() - start > args.budget_s,
          output=lambda out: out[:size, :size])
      us = bench_common.median_us(record)
      if us:
        record["tflops"] = 2 * size * size * inner / us / 1e6
      emit(record)


def xla_sddmm(precision, sample_block: int):
  """XLA's dense product, then the Pallas sampling kernel of csr_sddmm_dense."""
  def fn(cols, offsets, x, y):
    s = jnp.dot(x, y.T, precision=precision, preferred_element_type=jnp.float32)
    return csr_sddmm_dense.sample(s, cols, offsets, jnp.zeros(cols.shape, x.dtype),
                                  block=sample_block)
  return fn


def main() -> None:
  def add(parser):
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--plan", choices=("paths", "products"), default="paths",
                        help="paths: both SDDMM paths per density; products: the dense product "
                        "alone in PRODUCT_LAUNCHES (D = 128, 1024)")

  args = bench_common.probe_arguments(__doc__, add)
  dtype = jnp.dtype(args.dtype)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(dtype=args.dtype)
  table = bench_common.ProbeTable(args.outdir, "sddmm_dense_probe", "SDDMM: rows or dense tiles",
                                  meta, "| s | D | line | config | us | rel err |\n"
                                  "|---|---|---|---|---|---|")
  start = time.monotonic()

  def emit(record: dict) -> None:
    """Keeps, prints and writes out one timed line."""
    table.add(record, f"| {record['sparsity'] if record['sparsity'] is not None else '-'} | "
              f"{record['inner']} | {record['line']} | {record['config']} | "
              f"{bench_common.time_cell(record, 80)} | {bench_common.rel_err_cell(record)} |")

  if args.plan == "products":
    product_plan(args, dtype, config, emit, start)
    return
  size = 96 if args.smoke else 4096
  sparsities = (0.5, 0.9) if args.smoke else SPARSITIES
  inners = (40,) if args.smoke else INNER
  rng = np.random.default_rng(0)
  patterns = {s: csr_prefetch_probe.random_csr(rng, (size, size), s) for s in sparsities}
  for inner in inners:
    x64 = rng.standard_normal((size, inner))
    y64 = rng.standard_normal((size, inner))
    x, y = jnp.asarray(x64, dtype), jnp.asarray(y64, dtype)
    # The reference from the values actually stored in the timed dtype.
    xr, yr = np.asarray(x.astype(jnp.float32), np.float64), np.asarray(y.astype(jnp.float32),
                                                                          np.float64)
    s64 = xr @ yr.T
    working_set = 2 * size * inner * dtype.itemsize
    for sparsity in sparsities:
      _, _, cols, offsets = patterns[sparsity]
      nse = cols.size
      lines_for_inner = {"rows-default": None, **dense_launches(inner, dtype, nse / size),
                         "xla-highest": jax.lax.Precision.HIGHEST}
      if dtype == jnp.float32:
        lines_for_inner["xla-tf32x3"] = jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3
      rows = np.repeat(np.arange(size), np.diff(offsets))
      expected = jnp.asarray(s64[rows, cols], jnp.float32)
      operands = (jnp.asarray(cols), jnp.asarray(offsets), x, y)
      for name, launch in lines_for_inner.items():
        if name == "rows-default":
          fn = lambda c, o, x, y: csr_sddmm.kernel_fn(c, o, x, y, num_rows=size,
                                                      interpret=args.smoke, natural_order=True)
          shown = dataclasses.asdict(csr_sddmm.choose_config(size, nse, inner))
        elif name.startswith("dense"):
          fn = lambda c, o, x, y, launch=launch: csr_sddmm_dense.kernel_fn(
              c, o, x, y, num_rows=size, config=launch, interpret=args.smoke)
          shown = dataclasses.asdict(launch)
        else:
          if args.smoke:
            continue
          block = csr_sddmm_dense.choose_config(nse / size).sample_block
          fn, shown = xla_sddmm(launch, block), str(launch)
        record = {"sparsity": sparsity, "inner": inner, "nse": nse, "line": name,
                  "config": shown}
        bench_common.time_checked(record, fn, operands, working_set + nse * 8, config,
                                  expected, skip=time.monotonic() - start > args.budget_s)
        emit(record)
    # The dense product alone: what the sampling adds.
    for name, launch in dense_launches(inner, dtype, 128.0).items():
      if args.smoke or name != "dense-default":
        continue
      record = {"sparsity": None, "inner": inner, "line": f"{name}-product-only",
                "config": dataclasses.asdict(launch)}
      s_expected = jnp.asarray(s64, jnp.float32)
      bench_common.time_checked(
          record, lambda x, y: dense_product.xla_product_nt(x, y), (x, y),
          working_set, config, s_expected, skip=time.monotonic() - start > args.budget_s,
          output=lambda out: out[:size, :size])
      emit(record)

if __name__ == "__main__":
  main()
