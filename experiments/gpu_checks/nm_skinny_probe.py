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
from experiments import kernel_time  # noqa: E402
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
  meta = bench_common.probe_meta(dtype="bfloat16", pattern="2:4",
                                 kernel_time="experiments.kernel_time.measure, median us")
  table = bench_common.ProbeTable(args.outdir, "nm_skinny", "2:4 with a few dozen columns",
                                  meta, "| W | N | line | kernel us | dense / this | rel err |\n"
                                  "|---|---|---|---|---|---|")
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
      dense_us = None
      for name, fn, operands in lines:
        record = {"shape": list(shape), "n": n, "line": name}
        try:
          if time.monotonic() > deadline:
            raise TimeoutError("skipped: budget")
          timer = bench_common.launch_checked(record, fn, operands, expected)
          if not record["rel_err"] < TOLERANCE:
            raise ValueError(f"wrong: rel err {record['rel_err']:.2e}")
          if not args.smoke:
            record.update(kernel_time.measure(timer).record_fields())
        except Exception as failure:  # noqa: BLE001 - record and go on
          record["error"] = f"{type(failure).__name__}: {failure}"[:300]
        us = record.get("kernel_median_us")
        dense_us = us if name == "dense" else dense_us
        ratio = f"{dense_us / us:.2f}x" if us and dense_us else "-"
        cell = f"{us:.1f}" if us else record.get("error", "checked" if args.smoke else "-")[:80]
        table.add(record, f"| {shape[0]}x{shape[1]} | {n} | {name} | {cell} | {ratio} | "
                  f"{bench_common.rel_err_cell(record)} |")


if __name__ == "__main__":
  main()
