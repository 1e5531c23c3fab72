"""2:4 with a few dozen columns (batched decoding): does the joined-tile decoding kernel, which
``jsparse.spmm`` uses only up to N = 16, beat the paths used from 17 columns up if its column
tile is widened to 32 or 64?

Times, by device kernel time per call (``experiments.kernel_time``), on issue 8's weights
(4096x4096, 14336x4096, 4096x14336, 2:4 bf16) and N = 16, 24, 32, 48, 64, 128: dense
``jnp.dot``, ``jsparse.spmm`` as routed today (``impl="pallas"``), and
``nm_matmul.kernel_fn`` with the joined-tile launch of ``structured.nm_config`` at N = 16
(paired values, packed positions) with ``block_n`` 16, 32 and 64 (X padded to it).

    python3 -P experiments/gpu_checks/nm_skinny_probe.py OUTDIR [--budget-s 200] [--smoke]

Each output is checked against a float32 HIGHEST product first. Writes
OUTDIR/nm_skinny.jsonl and .md.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jsparse  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from jsparse._gpu import structured  # noqa: E402
from pallas_kernels import nm_matmul  # noqa: E402

BF16 = jnp.bfloat16
SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336))
COLUMNS = (16, 24, 32, 48, 64, 128)
BLOCK_NS = (16, 32, 64)
TOLERANCE = 2e-2


def joined(matrix, x, *, block_n: int, interpret: bool):
  """The joined-tile decoding launch (``nm_config`` at N = 16) with ``block_n`` columns a tile."""
  config = dataclasses.replace(structured.nm_config(matrix.layout, 16, matrix.dtype),
                               block_n=block_n)
  return nm_matmul.kernel_fn(matrix.data, matrix.packed_indices, x, shape=matrix.shape,
                             nm=(2, 4), config=config, indices_packed=True, interpret=interpret)


def main() -> None:
  args = bench_common.probe_arguments(__doc__)
  shapes, columns = (((64, 256),), (24,)) if args.smoke else (SHAPES, COLUMNS)
  table = bench_common.kernel_line_table(args.outdir, "nm_skinny",
                                         "2:4 with a few dozen columns")
  deadline = time.monotonic() + args.budget_s
  key = jax.random.key(0)
  for shape in shapes:
    values = jax.random.normal(jax.random.fold_in(key, shape[0] + 3 * shape[1]), shape)
    matrix = jsparse.NM.fromdense(values.astype(BF16), n=2, m=4)
    w = matrix.todense()
    for n in columns:
      x, expected = bench_common.bf16_columns_and_reference(key, w, n)
      lines = [("dense", bench_common.dense_bf16, (w, x)),
               ("spmm-default", lambda a, v: jsparse.spmm(a, v, impl="pallas"), (matrix, x))]
      lines += [(f"joined-bn{block_n}",
                 functools.partial(joined, block_n=block_n, interpret=args.smoke), (matrix, x))
                for block_n in BLOCK_NS]
      # Smoke runs (interpret mode, CPU) only check: the interpreter has no kernels to trace.
      bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                     deadline=deadline, tolerance=TOLERANCE,
                                     trace=not args.smoke)


if __name__ == "__main__":
  main()
