"""Where does a 2:4 decoding call spend its device time? Times ``jsparse.spmm`` of a 2:4
bfloat16 weight (``impl="pallas"``, the default launch) and dense ``jnp.dot`` on the decoding
shapes of issue 8 (4096x4096, 14336x4096, 4096x14336; N = 1, 8, 16) by device kernel time
per call (``experiments.kernel_time``: one-op programs, CUPTI trace), and lists each call's
kernels (name, count a call, us a call): the N:M kernel beside what XLA adds around it (X
padded to the column tile, the split-K partial sums added).

    python3 -P experiments/gpu_checks/nm_decode_kernels_probe.py OUTDIR [--smoke]

Every output is checked against a float32 HIGHEST product of the dense weight first. Writes
OUTDIR/nm_decode_kernels.jsonl and .md.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from experiments import kernel_time  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402

BF16 = jnp.bfloat16
SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336))
COLUMNS = (1, 8, 16)


def kernels_cell(top: list) -> str:
  """"name xcount: us; ..." of a call's longest activities (``KernelTime.top``)."""
  return "; ".join(f"{name[:40]} x{count:g}: {us:.1f}" for name, count, us in top)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--smoke", action="store_true",
                      help="one tiny shape, no trace (checks this script on the CPU)")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  meta = bench_common.probe_meta(dtype="bfloat16", pattern="2:4",
                                 kernel_time="experiments.kernel_time.measure, median us")
  header = ("| W | N | line | kernel us | dense / this | kernels a call (us) |\n"
            "|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "nm_decode_kernels", "2:4 decoding calls by "
                                  "kernel time", meta, header)
  shapes, columns = (((64, 128),), (1, 16)) if args.smoke else (SHAPES, COLUMNS)
  key = jax.random.key(0)
  for shape in shapes:
    values = jax.random.normal(jax.random.fold_in(key, shape[0] * 7 + shape[1]), shape)
    matrix = jsparse.NM.fromdense(values.astype(BF16), n=2, m=4)
    dense_w = matrix.todense()
    for n in columns:
      x, expected = bench_common.bf16_columns_and_reference(key, dense_w, n)
      lines = {
          "dense": (bench_common.dense_bf16, (dense_w, x)),
          "jsparse-nm": (lambda a, v: jsparse.spmm(a, v, impl="pallas"), (matrix, x)),
      }
      dense_us = None
      for line, (fn, operands) in lines.items():
        record = {"shape": list(shape), "n": n, "line": line}
        try:
          timer = bench_common.launch_checked(record, fn, operands, expected)
          error = record["rel_err"]
          if not np.isfinite(error) or error > 2e-2:
            raise ValueError(f"output differs from the float32 product: rel err {error:.2e}")
          if not args.smoke:
            measured = kernel_time.measure(timer, calls=15)
            record.update(measured.record_fields())
        except Exception as failure:  # noqa: BLE001 - record and go on
          record["error"] = f"{type(failure).__name__}: {failure}"[:300]
        us = record.get("kernel_median_us")
        if line == "dense":
          dense_us = us
        ratio = f"{dense_us / us:.2f}x" if us and dense_us else "-"
        kernels = kernels_cell(record["kernel_top"]) if us else record.get("error", "checked")
        table.add(record, f"| {shape[0]}x{shape[1]} | {n} | {line} | "
                  f"{f'{us:.1f}' if us else '-'} | {ratio} | {kernels} |")
      print(json.dumps({"shape": shape, "n": n}), flush=True)


if __name__ == "__main__":
  main()
