"""Which launch of the Pallas CSR SpMV streams large matrices fastest? Times SpmvConfig variants
(rows a program, nonzero step, warps, the ``prefetch`` of the next step's entries) on uniform
random matrices up to 16384x16384 (float32), beside torch's CSR SpMV (cuSPARSE) and an XLA copy
of 1 GiB (the bandwidth the fractions are of: bytes read + written over its time).

Bytes of an SpMV: nnz x (4 + 4) (values, column indices) + (M + 1) x 4 (offsets) + K x 4 (x)
+ M x 4 (out). Every output is checked against a float64 product first. Timing is
``structured_bench.time_jax`` / ``time_torch`` (medians, operand copies past the L2).

    python3 experiments/gpu_checks/spmv_probe.py OUTDIR [--budget-s 200] [--smoke]
        [--plan round2 | one-warp | one-row]

Writes OUTDIR/spmv_probe.jsonl and OUTDIR/spmv_probe.md, printing each row as it goes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks import bench_common, structured_bench  # noqa: E402
from pallas_kernels import csr_spmv  # noqa: E402


def launches(num_rows: int, nse: int, plan: str = "round2") -> dict[str, csr_spmv.SpmvConfig]:
  base = csr_spmv.choose_config(num_rows, nse)
  replace = dataclasses.replace
  aligned = replace(base, aligned_loads=True)
  if plan == "one-row":
    # One row a program (round one-warp: 256-entry steps on one warp streamed 16384 x 16384 at
    # 0.72-0.85 of copy for s <= 0.98): step width, warps, prefetch.
    one_row = csr_spmv.SpmvConfig(rows_per_program=1, block_nnz=256, num_warps=1)
    return {
        "default": base,
        "nnz256-r1-w1": one_row,
        "nnz128-r1-w1": replace(one_row, block_nnz=128),
        "nnz512-r1-w1": replace(one_row, block_nnz=512),
        "nnz512-r1-w2": replace(one_row, block_nnz=512, num_warps=2),
        "nnz1024-r1-w4": replace(one_row, block_nnz=1024, num_warps=4),
        "nnz256-r1-w1-prefetch": replace(one_row, prefetch=True),
        "nnz256-r1-w1-stages1": replace(one_row, num_stages=1),
    }
  if plan == "one-warp":
    # One warp a program: a row's sum needs only shuffles, so (if nothing else asks for shared
    # memory) XLA's launch keeps the large L1 that the gathers of x (64 KiB at K = 16384) need.
    plain = csr_spmv.SpmvConfig(rows_per_program=max(1, 512 // base.block_nnz),
                                block_nnz=base.block_nnz)
    return {
        "default": base,
        "w1": replace(base, num_warps=1),
        "plain-w1": replace(plain, num_warps=1),
        "aligned-w1": replace(aligned, num_warps=1),
        "aligned-nnz32-r16-w1": csr_spmv.SpmvConfig(rows_per_program=16, block_nnz=32,
                                                    aligned_loads=True, num_warps=1),
        "aligned-nnz128-r4-w1": csr_spmv.SpmvConfig(rows_per_program=4, block_nnz=128,
                                                    aligned_loads=True, num_warps=1),
        "aligned-nnz256-r1-w1": csr_spmv.SpmvConfig(rows_per_program=1, block_nnz=256,
                                                    aligned_loads=True, num_warps=1),
        "nnz256-r1-w1": csr_spmv.SpmvConfig(rows_per_program=1, block_nnz=256, num_warps=1),
    }
  return {
      "default": base,
      # Round 1 (no aligned loads) found every variant of these within ~10% of the default.
      "nnz32-r16-prefetch": replace(base, block_nnz=32, rows_per_program=16, prefetch=True),
      "aligned": aligned,
      "aligned-w2": replace(aligned, num_warps=2),
      "aligned-w8-r8": replace(aligned, rows_per_program=2 * base.rows_per_program, num_warps=8),
      "aligned-nnz256-r2": replace(aligned, block_nnz=256, rows_per_program=2),
      "aligned-nnz256-r4-w8": replace(aligned, block_nnz=256, rows_per_program=4, num_warps=8),
      "aligned-nnz64-r8": replace(aligned, block_nnz=64, rows_per_program=8),
      "aligned-nnz32-r16": replace(aligned, block_nnz=32, rows_per_program=16),
      "aligned-stages1": replace(aligned, num_stages=1),
  }


def uniform_csr(rng, size: int, sparsity: float):
  """(data, col_indices, row_offsets) of a uniform random [size, size] pattern, built row block
  by row block (no dense matrix)."""
  rows_done, cols_parts, counts = 0, [], []
  while rows_done < size:
    block = min(1024, size - rows_done)
    mask = rng.random((block, size), dtype=np.float32) >= sparsity
    r, c = np.nonzero(mask)
    cols_parts.append(c.astype(np.int32))
    counts.append(np.bincount(r, minlength=block))
    rows_done += block
  cols = np.concatenate(cols_parts)
  offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int32)
  data = rng.standard_normal(cols.size, dtype=np.float32)
  return data, cols, offsets


def main() -> None:
  args = bench_common.probe_arguments(__doc__, lambda parser: parser.add_argument(
      "--plan", choices=("round2", "one-warp", "one-row"), default="round2",
      help="round 2's aligned-load launches, one warp a program, or one row a program"))
  config = bench_common.probe_timing(args.smoke)
  start = time.monotonic()
  copy_gbs = None
  if not args.smoke:
    big = jnp.ones((1 << 28,), jnp.float32)
    result, _ = structured_bench.time_jax(lambda a: a + 1.0, (big,), 0, config)
    copy_gbs = 2 * big.nbytes / result["median_us"] / 1e3
    del big
  meta = bench_common.probe_meta(dtype="float32", copy_gbs=copy_gbs)
  header = ("| M = K | s | launch | config | us | GB/s | of copy | torch us | torch/this | "
            "rel err |\n|---|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "spmv_probe", "CSR SpMV launches", meta, header)
  rng = np.random.default_rng(0)
  cases = ([(64, 0.7), (64, 0.98)] if args.smoke else
           [(16384, s) for s in (0.98, 0.99, 0.9, 0.7)] + [(4096, s) for s in (0.9, 0.98)])
  if args.plan == "one-row" and not args.smoke:
    cases += [(4096, 0.95), (4096, 0.7), (32768, 0.99), (8192, 0.98)]
  for size, sparsity in cases:
    data, cols, offsets = uniform_csr(rng, size, sparsity)
    x = rng.standard_normal(size, dtype=np.float32)
    rows = np.repeat(np.arange(size), np.diff(offsets))
    expected = np.bincount(rows, weights=data.astype(np.float64) * x[cols].astype(np.float64),
                           minlength=size)
    expected = jnp.asarray(expected, jnp.float32)
    nse = data.size
    bytes_moved = nse * 8 + (size + 1) * 4 + 2 * size * 4
    operands = (jnp.asarray(data), jnp.asarray(cols), jnp.asarray(offsets), jnp.asarray(x))
    torch_us = None
    if not args.smoke:
      import torch
      a = torch.sparse_csr_tensor(torch.from_numpy(offsets).cuda(), torch.from_numpy(cols).cuda(),
                                  torch.from_numpy(data).cuda(), size=(size, size))
      xt = torch.from_numpy(x).cuda()
      torch_us = structured_bench.time_torch(
          lambda: (lambda a=a.clone(), xt=xt.clone(): torch.mv(a, xt)), bytes_moved,
          config)["median_us"]
    for name, launch in launches(size, nse, args.plan).items():
      record = {"size": size, "sparsity": sparsity, "nse": nse, "launch": name,
                "config": dataclasses.asdict(launch), "torch_us": torch_us,
                "bytes": bytes_moved}
      bench_common.time_checked(
          record, lambda d, c, o, x, launch=launch: csr_spmv.kernel_fn(
              d, c, o, x, num_rows=size, config=launch, interpret=args.smoke,
              natural_order=True), operands, bytes_moved, config, expected,
          skip=time.monotonic() - start > args.budget_s)
      us = bench_common.median_us(record)
      gbs = bytes_moved / us / 1e3 if us else None
      short = {k: v for k, v in record["config"].items() if k != "num_stages" or v != 2}
      table.add(record, f"| {size} | {sparsity} | {name} | {short} | "
                f"{bench_common.time_cell(record)} | {'%.0f' % gbs if gbs else '-'} | "
                f"{'%.2f' % (gbs / copy_gbs) if gbs and copy_gbs else '-'} | "
                f"{'%.1f' % torch_us if torch_us else '-'} | "
                f"{'%.2fx' % (torch_us / us) if us and torch_us else '-'} | "
                f"{bench_common.rel_err_cell(record)} |")


if __name__ == "__main__":
  main()
