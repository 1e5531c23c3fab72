"""Where does SpMM through dense rows beat the row kernel? Times the CSR row kernel
(``csr_spmm``, default launch), the dense-rows path (``csr_spmm_dense``: A's rows expanded, then
A @ B by XLA's dot) and XLA's dense product of the same A (``jnp.dot``; float32 at
``Precision.HIGHEST``), on 4096x4096 uniform random matrices (float32) and MiniLM's layer shapes
(bfloat16), and says which path ``csr_spmm_dense.prefers_dense`` picks.

Every output is checked against a float32 HIGHEST product of the stored values first ("rel
err"). Timing is ``structured_bench.time_jax`` (medians, operand copies past the L2).

    python3 experiments/gpu_checks/spmm_dense_probe.py OUTDIR [--budget-s 200] [--smoke]

Writes OUTDIR/spmm_dense_probe.jsonl and .md, printing each row as it goes.
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks import bench_common, csr_prefetch_probe  # noqa: E402
from pallas_kernels import csr_spmm, csr_spmm_dense  # noqa: E402

HIGHEST = jax.lax.Precision.HIGHEST


def plan(smoke: bool) -> list[tuple[tuple[int, int], float, int, str]]:
  """(A's shape, sparsity, N, dtype) in priority order."""
  if smoke:
    return [((96, 80), 0.5, 40, "float32"), ((64, 96), 0.9, 24, "bfloat16")]
  square = [((4096, 4096), s, n, "float32") for s in (0.5, 0.7, 0.8, 0.9)
            for n in (1024, 128, 32)]
  minilm = [(shape, s, n, "bfloat16") for shape in ((1536, 384), (384, 1536))
            for s in (0.7, 0.9) for n in (128, 4096)]
  return square + minilm + [((4096, 4096), 0.7, 1024, "bfloat16")]


def main() -> None:
  args = bench_common.probe_arguments(__doc__)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta()
  header = ("| A | s | N | dtype | line | us | rel err | picked |\n"
            "|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "spmm_dense_probe", "SpMM: rows or dense rows",
                                  meta, header)
  start = time.monotonic()
  rng = np.random.default_rng(0)
  for shape, sparsity, n, dtype_name in plan(args.smoke):
    dtype = jnp.dtype(dtype_name)
    dense, data, cols, offsets = csr_prefetch_probe.random_csr(rng, shape, sparsity)
    data = np.asarray(jnp.asarray(data, dtype).astype(jnp.float32))
    dense = np.zeros(shape, np.float32)
    dense[np.repeat(np.arange(shape[0]), np.diff(offsets)), cols] = data
    b = jnp.asarray(rng.standard_normal((shape[1], n), dtype=np.float32), dtype)
    expected = jnp.dot(jnp.asarray(dense), b.astype(jnp.float32), precision=HIGHEST)
    nse = data.size
    operands = (jnp.asarray(data, dtype), jnp.asarray(cols), jnp.asarray(offsets), b)
    working_set = nse * (4 + dtype.itemsize) + (b.size + shape[0] * n) * dtype.itemsize
    picked = csr_spmm_dense.prefers_dense(*shape, n, nse, dtype)
    lines_here = {
        "rows": lambda d, c, o, b: csr_spmm.kernel_fn(d, c, o, b, num_rows=shape[0],
                                                      interpret=args.smoke, natural_order=True),
        "dense-rows": lambda d, c, o, b: csr_spmm_dense.kernel_fn(d, c, o, b,
                                                                  num_rows=shape[0],
                                                                  interpret=args.smoke),
    }
    if not args.smoke:
      a_dense = jnp.asarray(dense, dtype)
      lines_here["xla-dense"] = lambda d, c, o, b: jnp.dot(
          a_dense, b, precision=HIGHEST if dtype == jnp.float32 else None)
    for name, fn in lines_here.items():
      record = {"shape": shape, "sparsity": sparsity, "n": n, "dtype": dtype_name,
                "line": name, "nse": nse, "picked": "dense-rows" if picked else "rows"}
      bench_common.time_checked(record, fn, operands, working_set, config, expected,
                                skip=time.monotonic() - start > args.budget_s)
      table.add(record, f"| {shape[0]}x{shape[1]} | {sparsity} | {n} | {dtype_name} | {name} | "
                f"{bench_common.time_cell(record)} | {bench_common.rel_err_cell(record)} | "
                f"{record['picked']} |")


if __name__ == "__main__":
  main()
