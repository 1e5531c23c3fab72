"""2:4 decoding on the sparse tensor cores through warp-level mma.sp (``jsparse._gpu.sparse_mma``):
is it right, which metadata layout does the hardware read, and how fast is it against dense and
the Pallas decoding kernels?

1. Builds the library (nvcc). (Stop 29's run also tried two metadata layouts and kept the one
   the hardware reads, "pair_rows", now the only one ``jsparse.formats.mma_nm.pack`` writes:
   ``experiments/results/h100-2026-11-27-sparse-mma/probe-unstaged/layouts.md``.)
2. Checks the kernel against a float32 HIGHEST product on ragged shapes (M not a multiple of 16,
   K not of 64, one row tile, nnz = 0 rows), N = 1..32, both x layouts, bfloat16 and float16 and
   several launches (``checks.md``).
3. Times, by device kernel time per call (``experiments.kernel_time``), issue 8's decoding
   weights (4096x4096, 14336x4096, 4096x14336, 2:4 bf16) at N = 1, 8, 16: dense ``jnp.dot``,
   ``jsparse.spmm`` (Pallas) and the kernel's launches (``sparse_mma.md``).

    python3 -P experiments/gpu_checks/sparse_mma_probe.py OUTDIR [--budget-s 300]
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jsparse  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from jsparse._gpu import sparse_mma  # noqa: E402
from jsparse.formats.mma_nm import MmaNM  # noqa: E402

SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336))
COLUMNS = (1, 8, 16)
CONFIGS = (sparse_mma.SparseMmaConfig(1, 8, False), sparse_mma.SparseMmaConfig(1, 8, True),
           sparse_mma.SparseMmaConfig(2, 8, True), sparse_mma.SparseMmaConfig(2, 4, True))
CHECK_SHAPES = ((16, 64), (40, 100), (1, 64), (33, 4), (64, 4096), (300, 1000))
CHECK_COLUMNS = (1, 9, 17, 32)
TOLERANCE = 2e-2


def two_four(key, shape, dtype, empty_rows=True):
  """A random 2:4 ``NM`` matrix of ``shape`` (a few rows zeroed when ``empty_rows``)."""
  w = jax.random.normal(key, shape, jnp.float32)
  if empty_rows and shape[0] > 2:
    w = w.at[1].set(0).at[shape[0] - 1].set(0)
  return jsparse.NM.fromdense(w.astype(dtype), n=2, m=4)


def product(matrix, x, tokens_major, config):
  packed = MmaNM.from_nm(matrix)
  if tokens_major:
    return sparse_mma.matmul(packed, x.T, tokens_major=True, config=config).T
  return sparse_mma.matmul(packed, x, config=config)


def reference(matrix, x):
  return jnp.dot(matrix.todense().astype(jnp.float32), x.astype(jnp.float32),
                 precision=jax.lax.Precision.HIGHEST)


def build_library() -> None:
  """Builds the CUDA library with nvcc (both kernels), printing how long it took."""
  started = time.monotonic()
  sparse_mma.build(verbose=True)
  print(f"built in {time.monotonic() - started:.1f} s", flush=True)


def run_checks(outdir: pathlib.Path) -> int:
  rows, failures = [], 0
  key = jax.random.key(7)
  configs = (None, sparse_mma.SparseMmaConfig(2, 8, False), sparse_mma.SparseMmaConfig(1, 3),
             sparse_mma.SparseMmaConfig(2, 1, True))
  for si, shape in enumerate(CHECK_SHAPES):
    for dtype in (jnp.bfloat16, jnp.float16):
      matrix = two_four(jax.random.fold_in(key, si), shape, dtype)
      for n in CHECK_COLUMNS:
        x = jax.random.normal(jax.random.fold_in(key, 100 * si + n), (shape[1], n)).astype(dtype)
        expected = reference(matrix, x)
        for tokens_major in (False, True):
          for config in configs:
            if dtype == jnp.float16 and config is not None:
              continue
            try:
              err = bench_common.rel_err(product(matrix, x, tokens_major, config), expected)
              ok = bool(err < TOLERANCE)
            except Exception as error:  # noqa: BLE001
              err, ok = f"{type(error).__name__}: {error}"[:200], False
            failures += not ok
            rows.append({"shape": shape, "dtype": jnp.dtype(dtype).name, "n": n,
                         "tokens_major": tokens_major, "config": str(config), "rel_err": err,
                         "ok": ok})
  (outdir / "checks.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
  summary = f"{len(rows) - failures} of {len(rows)} checks passed"
  bad = [row for row in rows if not row["ok"]][:20]
  (outdir / "checks.md").write_text(summary + "\n\n" + "\n".join(map(str, bad)) + "\n")
  print(summary, *bad, sep="\n", flush=True)
  return failures


def main() -> None:
  args = bench_common.probe_arguments(__doc__)
  build_library()
  run_checks(args.outdir)
  table = bench_common.kernel_line_table(args.outdir, "sparse_mma", "2:4 decoding on mma.sp")
  deadline = time.monotonic() + args.budget_s
  key = jax.random.key(0)
  for shape in SHAPES:
    matrix = two_four(jax.random.fold_in(key, shape[0] + 3 * shape[1]), shape, jnp.bfloat16,
                      empty_rows=False)
    w = matrix.todense()
    packed = MmaNM.from_nm(matrix)
    for n in COLUMNS:
      x, expected = bench_common.bf16_columns_and_reference(key, w, n)
      lines = [("dense", bench_common.dense_bf16, (w, x)),
               ("spmm-pallas", lambda a, v: jsparse.spmm(a, v, impl="pallas"), (matrix, x))]
      lines += [(f"mma-m{c.m_tiles}-w{c.warps}{'-staged' if c.staged else ''}",
                 lambda a, x, c=c: sparse_mma.matmul(a, x, config=c), (packed, x))
                for c in CONFIGS]
      bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                     deadline=deadline, tolerance=TOLERANCE)
      bench_common.time_kernel_lines(
          table, [(f"mma-tokens-major-m{c.m_tiles}-w{c.warps}{'-staged' if c.staged else ''}",
                   lambda a, xt, c=c: sparse_mma.matmul(a, xt, tokens_major=True, config=c),
                   (packed, x.T)) for c in CONFIGS],
          shape=shape, n=n, expected=expected.T, deadline=deadline, tolerance=TOLERANCE)


if __name__ == "__main__":
  main()
