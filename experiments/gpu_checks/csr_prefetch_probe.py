"""Which launch of the Pallas CSR SpMM and SDDMM is fastest? Times launch variants side by side
on 4096x4096 uniform random, float32 (round 1: ``prefetch`` modes and Triton's pipeliner, the
latter through a private hook that marked every loop ``tt.num_stages``, removed after the round:
see 7d01dac; round 2: one or two warps a program).

Round 2's reason: XLA launches a kernel that asks for dynamic shared memory with
``CU_FUNC_CACHE_PREFER_SHARED``, which leaves ~23 KB of L1 on an H100/H200 (Nsight Compute:
"Shared Memory Configuration Size 233 KB"). The CSR kernels ask for 0.1-1 KB only for their
cross-warp reductions; on one warp they need none, run with L1 at full size, and rows gathered
by neighbouring programs can hit in it (Sputnik's kernels: 32-thread blocks, 62-90% L1 hits).

Triton software-pipelines only loops that feed a ``dot``; the CSR loops have none, so each step
waits on its own column-index load before it can gather. ``prefetch="indices"`` loads the next
step's indices a step early, ``"tile"`` also the next gathered tile (``SpmmConfig``,
``SddmmConfig``). Every result is checked against a float32-HIGHEST dense product before it is
timed; timing is ``structured_bench.time_jax`` (the suite's JaxLoopTimer, operand copies past
the L2), torch CSR (cuSPARSE) timed beside it by ``structured_bench.time_torch``.

    python3 experiments/gpu_checks/csr_prefetch_probe.py OUTDIR [--budget-s 200] [--smoke]

Writes OUTDIR/csr_prefetch_probe.jsonl and OUTDIR/csr_prefetch_probe.md, printing each row as
it goes; launches past the budget are listed as skipped.
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

from experiments.gpu_checks import bench_common, structured_bench  # noqa: E402
from pallas_kernels import csr_sddmm, csr_spmm  # noqa: E402

HIGHEST = jax.lax.Precision.HIGHEST


def spmm_launches(shape: tuple[int, int], n: int, nse: int) -> dict[str, csr_spmm.SpmmConfig]:
  base = csr_spmm.choose_config(*shape, n, nse)
  replace = dataclasses.replace
  return {
      "default": base,
      "w4-before": replace(base, num_warps=4, block_nnz=max(16, min(32, base.block_n // 2))),
      # One warp a program: no cross-warp reduction, so no shared memory, so XLA launches the
      # kernel without CU_FUNC_CACHE_PREFER_SHARED and L1 keeps its size (see the module doc).
      "w1-nnz8": replace(base, num_warps=1, block_nnz=8),
      "w1-nnz16": replace(base, num_warps=1, block_nnz=16),
      "w1-nnz32": replace(base, num_warps=1, block_nnz=32),
      "w2-nnz16": replace(base, num_warps=2, block_nnz=16),
      "w1-nnz16-bn128": replace(base, num_warps=1, block_nnz=16, block_n=128),
      "w1-nnz16-indices": replace(base, num_warps=1, block_nnz=16, prefetch="indices"),
      # Round 3, around the one-warp default: narrower N tiles (more programs), two rows a
      # program (their steps interleaved, both sums in the warp).
      "bn32": replace(base, block_n=min(32, base.block_n)),
      "rows2": replace(base, rows_per_program=2),
      "bn32-rows2": replace(base, block_n=min(32, base.block_n), rows_per_program=2),
  }


def sddmm_launches(inner: int, nse: int) -> dict[str, csr_sddmm.SddmmConfig]:
  base = csr_sddmm.choose_config(4096, nse, inner)
  replace = dataclasses.replace
  return {
      "default": base,
      "w1-nnz8": replace(base, num_warps=1, block_nnz=8),
      "w1-nnz16": replace(base, num_warps=1, block_nnz=16),
      "w1-nnz32": replace(base, num_warps=1, block_nnz=32),
      "w2-nnz16": replace(base, num_warps=2, block_nnz=16),
      "w1-nnz16-indices": replace(base, num_warps=1, block_nnz=16, prefetch="indices"),
      # Round 4: D in 4- or 8-wide chunks on one warp, so that a row's chunk sits in one lane
      # (a 16-byte vector) and the sum over D stays in the lane: no layout change before the
      # store, so maybe no shared memory and a full-size L1 for Y's rows (D <= 128 only: the
      # chunks are unrolled).
      "w1-d4-nnz32": replace(base, num_warps=1, block_nnz=32, block_d=4),
      "w1-d8-nnz32": replace(base, num_warps=1, block_nnz=32, block_d=8),
  }


# Launches of the MiniLM plan: the default and what few-program launches might want instead.
MINILM_LAUNCHES = ("default", "w4-before", "w2-nnz16", "w4-nnz16")


def plan(smoke: bool, name: str = "square") -> list[tuple[str, float, int, tuple[int, int]]]:
  """(op, sparsity, N or D, [M, K]) in priority order: 4096 x 4096 (``square``), or MiniLM's
  layer shapes at its token counts (``minilm``, SpMM only)."""
  if smoke:
    return [("spmm", 0.9, 32, (256, 256)), ("sddmm", 0.9, 32, (256, 256))]
  if name == "minilm":
    return [("spmm", s, n, shape) for n in (128, 4096) for s in (0.7, 0.9)
            for shape in ((384, 384), (1536, 384), (384, 1536))]
  square = (4096, 4096)
  return ([("spmm", s, n, square) for s, n in ((0.9, 128), (0.9, 32), (0.7, 128), (0.98, 128),
                                                  (0.5, 1024), (0.9, 1024), (0.98, 32))]
          + [("sddmm", 0.9, d, square) for d in (128, 32, 1024)])


def random_csr(rng, shape: tuple[int, int], sparsity: float):
  """``csr_bench.uniform_csr`` for any ``[M, K]``: (dense float32, data, col_indices, offsets)."""
  rows, cols = np.nonzero(rng.random(shape, dtype=np.float32) >= sparsity)
  data = rng.standard_normal(rows.size, dtype=np.float32)
  dense = np.zeros(shape, np.float32)
  dense[rows, cols] = data
  offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
  return dense, data, cols.astype(np.int32), offsets.astype(np.int32)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--budget-s", type=float, default=200.0)
  parser.add_argument("--smoke", action="store_true", help="tiny shapes, interpret mode")
  parser.add_argument("--plan", choices=("square", "minilm"), default="square")
  parser.add_argument("--launches", nargs="*", default=None,
                      help="only these launch names (default: all of the plan's)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  args = parser.parse_args()
  dtype = jnp.dtype(args.dtype)
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = bench_common.probe_timing(args.smoke)
  meta = bench_common.probe_meta(dtype=args.dtype, plan=args.plan)
  print(json.dumps(meta), flush=True)
  header = ("| op | M x K | s | N or D | launch | config | us | torch us | torch/this | rel err |"
            "\n|---|---|---|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "csr_prefetch_probe", "CSR kernel launches", meta,
                                  header)
  start = time.monotonic()
  rng = np.random.default_rng(0)
  matrices = {}
  for op, sparsity, width, shape in plan(args.smoke, args.plan):
    if (sparsity, shape) not in matrices:
      matrices[(sparsity, shape)] = random_csr(rng, shape, sparsity)
    dense, data, cols, offsets = matrices[(sparsity, shape)]
    size = shape[0]
    # Values rounded to the timed dtype; the reference is a float32 product of those values.
    data = np.asarray(jnp.asarray(data, dtype).astype(jnp.float32))
    dense = np.zeros(shape, np.float32)
    dense[np.repeat(np.arange(size), np.diff(offsets)), cols] = data
    operands = (jnp.asarray(data, dtype), jnp.asarray(cols), jnp.asarray(offsets))
    nse = data.size
    torch_us = None
    if op == "spmm":
      b = jnp.asarray(rng.standard_normal((shape[1], width), dtype=np.float32), dtype)
      expected = jnp.dot(jnp.asarray(dense), b.astype(jnp.float32), precision=HIGHEST)
      working_set = (nse * (4 + dtype.itemsize) + offsets.nbytes
                     + (b.size + size * width) * dtype.itemsize)
      launches = spmm_launches(shape, width, nse)
      if args.plan == "minilm":
        launches = {k: v for k, v in launches.items() if k in MINILM_LAUNCHES}
        launches["w4-nnz16"] = dataclasses.replace(launches["default"], num_warps=4,
                                                   block_nnz=16)
      call = lambda launch: (lambda d, c, o, b: csr_spmm.kernel_fn(
          d, c, o, b, num_rows=size, config=launch, interpret=args.smoke,
          natural_order=True))
      timed_operands = (*operands, b)
      if not args.smoke and dtype == jnp.float32:
        torch_us = _torch_spmm_us(dense, np.asarray(b), working_set, config)
    else:
      x = jnp.asarray(rng.standard_normal((size, width), dtype=np.float32))
      y = jnp.asarray(rng.standard_normal((size, width), dtype=np.float32))
      rows = np.repeat(np.arange(size), np.diff(offsets))
      expected = jnp.sum(jnp.asarray(np.asarray(x)[rows]) * jnp.asarray(np.asarray(y)[cols]),
                         axis=1)
      working_set = nse * 8 + offsets.nbytes + 2 * size * width * 4
      launches = sddmm_launches(width, nse)
      call = lambda launch: (lambda d, c, o, x, y: csr_sddmm.kernel_fn(
          c, o, x, y, num_rows=size, config=launch, interpret=args.smoke, natural_order=True))
      timed_operands = (*operands, x, y)
      if not args.smoke:
        torch_us = _torch_sddmm_us(dense, np.asarray(x), np.asarray(y), working_set, config)
    if args.launches:
      launches = {k: v for k, v in launches.items() if k in args.launches}
    if op == "sddmm" and width > 128:
      launches = {k: v for k, v in launches.items() if v.block_d >= 16}
    for name, launch in launches.items():
      record = {"op": op, "shape": shape, "sparsity": sparsity, "width": width, "launch": name,
                "config": dataclasses.asdict(launch), "torch_us": torch_us}
      bench_common.time_checked(
          record, call(launch), timed_operands, working_set, config, expected,
          skip=time.monotonic() - start > args.budget_s,
          output=lambda out, op=op, nse=nse: out[:nse] if op == "sddmm" else out)
      us = bench_common.median_us(record)
      short = {k: v for k, v in record["config"].items() if k != "num_stages"}
      table.add(record, f"| {op} | {shape[0]}x{shape[1]} | {sparsity} | {width} | {name} | "
                f"{short} | {bench_common.time_cell(record)} | "
                f"{'%.1f' % torch_us if torch_us else '-'} | "
                f"{'%.2fx' % (torch_us / us) if us and torch_us else '-'} | "
                f"{bench_common.rel_err_cell(record)} |")


def _torch_spmm_us(dense, b, working_set, config) -> float | None:
  import torch
  if not torch.cuda.is_available():
    return None
  a = torch.from_numpy(dense).cuda().to_sparse_csr()
  bt = torch.from_numpy(b).cuda()
  return structured_bench.time_torch(
      lambda: (lambda a=a.clone(), bt=bt.clone(): torch.sparse.mm(a, bt)), working_set,
      config)["median_us"]


def _torch_sddmm_us(dense, x, y, working_set, config) -> float | None:
  import torch
  if not torch.cuda.is_available():
    return None
  pattern = torch.from_numpy(dense).cuda().to_sparse_csr()
  # Y.T as a view (column-major [D, N]), the layout csr_bench and the harness give torch: a
  # contiguous [D, N] copy runs ~3.4x slower (round 1 of this probe, D = 128: 397 against 117 us).
  xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda().T
  return structured_bench.time_torch(
      lambda: (lambda p=pattern.clone(), xt=xt.clone(), yt=yt.clone():
               torch.sparse.sampled_addmm(p, xt, yt, beta=0.0)), working_set,
      config)["median_us"]


if __name__ == "__main__":
  main()
