"""Which CSR SpMM path should a call take, alone and inside a layer? For small and MiniLM-sized
weights, times ``jsparse.spmm(W, B)`` (the op alone) and ``nn.linear.sparse_matmul(x, W)`` (the
layer's call, ``spmm(W, x.T).T``) with each path forced (``JSPARSE_CSR_SPMM_PATH`` = rows /
dense), by device kernel time per call (``experiments.kernel_time``) and by the loop timer, and
says which path ``csr_spmm_dense.prefers_dense`` picks.

Every output is checked against a float32 HIGHEST product of the stored values first.

    python3 -P experiments/gpu_checks/spmm_path_probe.py OUTDIR [--budget-s 200] [--smoke]

Writes OUTDIR/spmm_path_probe.jsonl and .md, printing each row as it goes.
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
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from experiments import kernel_time  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from jsparse._gpu import csr as gpu_csr  # noqa: E402
from jsparse.nn.linear import sparse_matmul  # noqa: E402
from pallas_kernels import csr_spmm_dense  # noqa: E402


def plan(smoke: bool) -> list[tuple[tuple[int, int], float, int, str]]:
  """(W's shape, sparsity, N, dtype) in priority order."""
  if smoke:
    return [((48, 40), 0.7, 16, "float32")]
  minilm = [(shape, s, n, "bfloat16") for n in (128, 4096)
            for shape in ((384, 384), (1536, 384), (384, 1536)) for s in (0.7, 0.9)]
  small = [(shape, s, n, "float32") for n in (128, 1024)
           for shape in ((512, 512), (2048, 512), (512, 2048)) for s in (0.7, 0.8, 0.9, 0.98)]
  return minilm[:6] + small[:12] + minilm[6:] + small[12:]


def main() -> None:
  args = bench_common.probe_arguments(__doc__)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(kernel_time="experiments.kernel_time.measure, median us")
  header = ("| W | s | N | dtype | call | path | kernel us | loop us | rel err | picked |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "spmm_path_probe", "SpMM path: alone and in a "
                                  "layer", meta, header)
  start = time.monotonic()
  rng = np.random.default_rng(0)
  for shape, sparsity, n, dtype_name in plan(args.smoke):
    dtype = jnp.dtype(dtype_name)
    dense = rng.standard_normal(shape).astype(np.float32) * (rng.random(shape) >= sparsity)
    dense = np.asarray(jnp.asarray(dense, dtype).astype(jnp.float32))
    weight = jsparse.CSR.fromdense(jnp.asarray(dense, dtype))
    b = jnp.asarray(rng.standard_normal((shape[1], n)), dtype)
    expected = jnp.dot(jnp.asarray(dense), b.astype(jnp.float32),
                       precision=jax.lax.Precision.HIGHEST)
    picked = csr_spmm_dense.prefers_dense(*shape, n, weight.nse, dtype)
    calls = {"op": (lambda w, b: jsparse.spmm(w, b, impl="pallas"), (weight, b), lambda o: o),
             "layer": (lambda w, x: sparse_matmul(x, w, impl="pallas"), (weight, b.T),
                       lambda o: o.T)}
    for call, (fn, operands, as_product) in calls.items():
      for path in ("rows", "dense"):
        record = {"shape": shape, "sparsity": sparsity, "n": n, "dtype": dtype_name,
                  "call": call, "path": path, "nse": int(weight.nse),
                  "picked": "dense" if picked else "rows"}
        if time.monotonic() - start > args.budget_s:
          record["error"] = "skipped: time budget spent"
        else:
          try:
            with mock.patch.dict(os.environ, {gpu_csr.SPMM_PATH_ENV_VAR: path}):
              timer = bench_common.launch_checked(record, fn, operands, expected,
                                                  output=as_product)
              record["loop_us"] = timer.measure(config).median_us
              if not args.smoke:
                record.update(kernel_time.measure(timer).record_fields())
          except Exception as error:  # noqa: BLE001 - record and go on
            record["error"] = f"{type(error).__name__}: {error}"[:300]
        kernel = record.get("kernel_median_us")
        table.add(record, f"| {shape[0]}x{shape[1]} | {sparsity} | {n} | {dtype_name} | {call} "
                  f"| {path} | {'%.1f' % kernel if kernel else record.get('error', '-')[:50]} | "
                  f"{'%.1f' % record['loop_us'] if 'loop_us' in record else '-'} | "
                  f"{bench_common.rel_err_cell(record)} | {record['picked']} |")


if __name__ == "__main__":
  main()
