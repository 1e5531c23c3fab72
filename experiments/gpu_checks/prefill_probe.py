"""Prefill (wide X) through a dense W: does expanding a sparse weight once a call and multiplying
it by XLA's dense product beat the fused kernels, which redo the expansion for every column tile
of X on the CUDA cores?

For 2:4 (``nm_matmul.expand_fn``, XLA-fused), tiled-bitmap (``tiled_spmm.expand_fn``, Pallas) and
CSR (``csr_spmm_dense.dense_rows``, Pallas) weights: the default lowering (``jsparse.spmm``),
the fused kernel (N:M, tiled: ``structured.EXPAND_MIN_N`` raised past N; CSR: the row kernel),
the expansion alone, the expansion then ``jnp.dot`` (float32 accumulation; float32 at HIGHEST),
and the dense product of the same W. Every result is checked against a float32 product first.

    python3 experiments/gpu_checks/prefill_probe.py OUTDIR [--budget-s 200] [--smoke]
        [--plan prefill|crossover]

Writes OUTDIR/prefill_probe.jsonl and .md, printing each row as it goes.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
from unittest import mock

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jsparse  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from jsparse._gpu import csr as gpu_csr, structured  # noqa: E402
from jsparse.formats import CSR, NM, Tiled  # noqa: E402
from pallas_kernels import csr_spmm_dense, dense_product, nm_matmul, tiled_spmm  # noqa: E402

BF16, F32 = jnp.bfloat16, jnp.float32


def cases(smoke: bool, plan: str = "prefill") -> list[tuple[str, tuple[int, int], float, int,
                                                             object]]:
  """(format, W shape, sparsity, N, dtype) in priority order; ``plan`` "crossover": the narrower
  X where the fused kernels and the expansion cross (N = 64-512)."""
  if plan == "crossover":
    return [(fmt, shape, sparsity, n, BF16) for n in (64, 128, 256, 512)
            for fmt, shape, sparsity in (("nm", (4096, 4096), 0.5), ("nm", (1536, 384), 0.5),
                                         ("tiled", (4096, 4096), 0.7),
                                         ("tiled", (1536, 384), 0.7), ("tiled", (384, 384), 0.7))]
  if smoke:
    return [("nm", (64, 128), 0.5, 64, BF16), ("tiled", (64, 128), 0.7, 64, BF16),
            ("csr", (64, 96), 0.7, 64, BF16), ("csr", (48, 64), 0.5, 32, F32)]
  minilm = [(1536, 384), (384, 1536), (384, 384)]
  return ([("nm", s, 0.5, n, BF16) for s, n in (((4096, 4096), 1024), ((4096, 4096), 4096),
                                                 ((14336, 4096), 1024), ((4096, 14336), 1024))]
          + [("tiled", s, sp, 4096, BF16) for sp in (0.7, 0.9) for s in minilm]
          + [("csr", s, sp, 4096, BF16) for sp in (0.7, 0.9) for s in minilm]
          + [("tiled", (4096, 4096), 0.7, 1024, BF16), ("nm", (1536, 384), 0.5, 4096, BF16),
             ("csr", (4096, 4096), 0.5, 1024, F32), ("csr", (4096, 4096), 0.7, 1024, F32)])


def build(fmt: str, shape, sparsity: float, dtype, key, interpret: bool):
  """(matrix, dense W of the same rounded values, expansion function of the matrix)."""
  w = jax.random.normal(key, shape, F32)
  if fmt == "nm":
    matrix = NM.fromdense(w.astype(dtype), n=2, m=4)
    expand = lambda a: nm_matmul.expand_fn(a.data, a.packed_indices, shape=a.shape, nm=(2, 4),  # noqa: E731
                                           indices_packed=True)
    return matrix, matrix.todense(), expand
  keep = jax.random.uniform(jax.random.fold_in(key, 1), shape) >= sparsity
  w = jnp.where(keep, w, 0).astype(dtype)
  if fmt == "tiled":
    matrix = Tiled.fromdense(w)
    expand = lambda a: tiled_spmm.expand_fn(a.data, a.bitmaps, a.row_offsets, shape=a.shape,  # noqa: E731
                                                interpret=interpret)
    return matrix, w, expand
  matrix = CSR.fromdense(w)

  def expand(a):
    config = csr_spmm_dense.choose_config(a.shape[1])
    return csr_spmm_dense.dense_rows(a.data, a.col_indices, a.row_offsets, num_cols=a.shape[1],
                                     config=config, interpret=interpret)[:, :a.shape[1]]
  return matrix, w, expand


def main() -> None:
  args = bench_common.probe_arguments(__doc__, lambda parser: parser.add_argument(
      "--plan", default="prefill", choices=("prefill", "crossover")))
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(plan="prefill through dense W")
  header = ("| format | W | s | N | dtype | line | us | dense us | dense/this | rel err |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "prefill_probe", "prefill through a dense W",
                                  meta, header)
  start, key = time.monotonic(), jax.random.key(0)
  for index, (fmt, shape, sparsity, n, dtype) in enumerate(
      cases(args.smoke, args.plan)):
    matrix, w, expand = build(fmt, shape, sparsity, dtype, jax.random.fold_in(key, index),
                                 interpret=args.smoke)
    x = jax.random.normal(jax.random.fold_in(key, 1000 + index), (shape[1], n), F32).astype(dtype)
    expected = jnp.dot(w.astype(F32), x.astype(F32), precision=jax.lax.Precision.HIGHEST)
    dot = dense_product.xla_product
    lines = {
        "dense": (dot, (w, x), expected),
        "kernel (default)": (lambda a, b: jsparse.spmm(a, b), (matrix, x), expected),
        "fused kernel": (lambda a, b: jsparse.spmm(a, b), (matrix, x), expected),
        "expand only": (lambda a: expand(a), (matrix,), w.astype(F32)),
        "expand + dot": (lambda a, b: dot(expand(a), b), (matrix, x), expected),
    }
    working_set = int(w.size * w.dtype.itemsize + x.size * x.dtype.itemsize)
    dense_us = None
    for line, (fn, operands, want) in lines.items():
      record = {"format": fmt, "shape": list(shape), "sparsity": sparsity, "n": n,
                "dtype": jnp.dtype(dtype).name, "line": line}
      # The fused kernels at any N: no expansion (the choice is made when the timed loop is
      # compiled, inside time_checked); CSR: the row kernel.
      fused = line == "fused kernel"
      with mock.patch.object(structured, "EXPAND_MIN_N",
                             1 << 30 if fused else structured.EXPAND_MIN_N), \
          mock.patch.dict(os.environ, {gpu_csr.SPMM_PATH_ENV_VAR: "rows"} if fused else {}):
        bench_common.time_checked(record, fn, operands, working_set, config, want,
                                  skip=time.monotonic() - start > args.budget_s)
      us = bench_common.median_us(record)
      dense_us = us if line == "dense" else dense_us
      ratio = "%.2fx" % (dense_us / us) if us and dense_us else "-"
      table.add(record, f"| {fmt} | {shape[0]}x{shape[1]} | {sparsity} | {n} | "
                f"{jnp.dtype(dtype).name} | {line} | {bench_common.time_cell(record)} | "
                f"{'%.1f' % dense_us if dense_us else '-'} | {ratio} | "
                f"{bench_common.rel_err_cell(record)} |")


if __name__ == "__main__":
  main()
