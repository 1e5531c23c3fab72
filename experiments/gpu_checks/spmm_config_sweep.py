"""Which row-kernel config is fastest where the CSR SpMM trails Sputnik? Times
``pallas_kernels.csr_spmm.kernel_fn`` under a grid of ``SpmmConfig``s on the harness's own
problems (``experiments.problems``: uniform 4096 x 4096 at s >= 0.9 and the DLMC cases that lost
most in ``experiments/results/h100-2026-11-26-kernel-time/``), by device kernel time per call
(``experiments.kernel_time``), the launch in row order (what the op takes on these matrices).

Every config's output is checked against a float32 HIGHEST dense product first; a config that
is wrong is recorded as such and not timed.

    python3 -P experiments/gpu_checks/spmm_config_sweep.py OUTDIR [--budget-s 400] [--smoke]
        [--narrow]

``--narrow``: N = 32 instead (32-column tiles), uniform s = 0.5-0.98 and three DLMC matrices.
``--long``: launches of few, long rows (DLMC's 512-row matrices, uniform s = 0.5 at N = 32),
with each row's entries split over 1-8 programs (``SpmmConfig.row_splits``).
``--wide``: programs of 128 and 256 columns on one warp or two (Sputnik's kernel takes 256
columns a warp and hits L1 more: ``experiments/results/h100-2026-11-26-spmm-ncu/``) on uniform
s >= 0.9.
``--pieces``: the wide grid and row splits on the row pieces of a sharded 4096 x 4096 and
14336 x 4096 at s = 0.9 (1024-3584 x 4096), beside the whole 4096 x 4096
(on four GPUs a 1024-row piece's kernel took 1.7x a quarter of the whole one's:
``experiments/scaling/results/h200x4-2026-11-27/``).

Writes OUTDIR/spmm_config_sweep.jsonl and .md (one row per case and config, the default config
marked, each time also as a ratio to the default's), printing each row as it goes.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments import problems  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.grid import Case  # noqa: E402
from pallas_kernels import csr_spmm  # noqa: E402


def plan(smoke: bool, narrow: bool = False, long: bool = False,
         wide: bool = False, pieces: bool = False) -> list[Case]:
  """The cases, in priority order."""
  if smoke:
    return [Case("spmm", "csr", "uniform/64x48", 0.9, 16, "float32")]
  if pieces:
    return [Case("spmm", "csr", f"uniform/{rows}x4096", 0.9, n, "float32")
            for rows, n in ((1024, 1024), (1536, 1024), (1024, 128), (1536, 128), (1024, 32),
                            (2048, 1024), (2048, 128), (4096, 1024), (3584, 1024))]
  if wide:
    return [Case("spmm", "csr", "uniform/4096x4096", s, n, "float32")
            for s, n in ((0.9, 1024), (0.95, 1024), (0.9, 128), (0.95, 128), (0.98, 1024),
                         (0.98, 128))]
  if long:
    return [Case("spmm", "csr", f"dlmc/{source}", s, n, "float32") for source, s, n in (
        ("magnitude_pruning/512x2048#0", 0.8, 32), ("magnitude_pruning/512x2048#0", 0.8, 128),
        ("magnitude_pruning/512x2048#0", 0.9, 32), ("random_pruning/512x2048#0", 0.8, 32),
        ("magnitude_pruning/512x2048#0", 0.5, 32), ("random_pruning/512x2048#0", 0.9, 128),
        ("random_pruning/512x512#0", 0.7, 128), ("magnitude_pruning/512x2048#0", 0.7, 1024))
    ] + [Case("spmm", "csr", "uniform/4096x4096", 0.5, 32, "float32")]
  if narrow:
    return ([Case("spmm", "csr", "uniform/4096x4096", s, 32, "float32")
             for s in (0.9, 0.7, 0.95, 0.5, 0.98)]
            + [Case("spmm", "csr", f"dlmc/{source}", s, 32, "float32") for source, s in (
                ("magnitude_pruning/2048x512#0", 0.9), ("magnitude_pruning/512x2048#0", 0.9),
                ("random_pruning/512x512#0", 0.7))])
  uniform = [Case("spmm", "csr", "uniform/4096x4096", s, n, "float32")
             for s, n in ((0.9, 1024), (0.95, 128), (0.9, 128), (0.98, 1024), (0.95, 1024),
                          (0.98, 128))]
  dlmc = [Case("spmm", "csr", f"dlmc/{source}", s, n, "float32") for source, s, n in (
      ("magnitude_pruning/512x2048#0", 0.9, 1024),
      ("magnitude_pruning/2048x512#0", 0.98, 128),
      ("random_pruning/2048x512#0", 0.7, 128),
      ("magnitude_pruning/512x512#0", 0.98, 1024))]
  return uniform[:3] + dlmc[:2] + uniform[3:] + dlmc[2:]


def configs(default: csr_spmm.SpmmConfig, smoke: bool, narrow: bool = False,
            long: bool = False, wide: bool = False,
            pieces: bool = False) -> list[csr_spmm.SpmmConfig]:
  """The default first, then one-warp variants of step size, sub-steps, rows a program and N
  tile (``narrow``: of 32-column tiles; ``long``: row splits of one- and four-warp launches;
  ``wide``: 128- and 256-column tiles, on one warp and two)."""
  if smoke:
    grid = [dataclasses.replace(default, block_nnz=4, substeps=2)]
  elif wide or pieces:
    grid = [csr_spmm.SpmmConfig(block_n=n, block_nnz=nnz, num_warps=warps, substeps=sub)
            for n, nnz, sub, warps in ((128, 8, 1, 1), (128, 8, 2, 1), (128, 4, 2, 1),
                                       (128, 4, 4, 1), (128, 16, 1, 1), (256, 4, 1, 1),
                                       (256, 4, 2, 1), (256, 8, 1, 1), (256, 2, 4, 1),
                                       (256, 8, 1, 2), (256, 8, 2, 2), (128, 8, 2, 2))]
    if pieces:
      grid += [dataclasses.replace(default, row_splits=splits) for splits in (2, 4)]
      grid += [csr_spmm.SpmmConfig(block_n=64, block_nnz=8, num_warps=1, substeps=2),
               csr_spmm.SpmmConfig(block_n=64, block_nnz=16, num_warps=4),
               csr_spmm.SpmmConfig(block_n=128, block_nnz=8, num_warps=1, num_stages=2)]
      # The unsplit launches the N = 128 and N = 32 pieces took before they split.
      grid += [csr_spmm.SpmmConfig(block_n=64, block_nnz=8, num_warps=1, num_stages=2,
                                   substeps=2),
               csr_spmm.SpmmConfig(block_n=32, block_nnz=32, num_warps=1, num_stages=2),
               csr_spmm.SpmmConfig(block_n=32, block_nnz=16, num_warps=1, num_stages=2)]
  elif long:
    block_n = default.block_n
    one_warp = csr_spmm.SpmmConfig(block_n=block_n, block_nnz=16 if block_n < 64 else 8,
                                   substeps=1 if block_n < 64 else 2, num_warps=1)
    four_warps = csr_spmm.SpmmConfig(block_n=block_n, block_nnz=max(16, min(32, block_n // 2)),
                                     num_warps=4)
    grid = [dataclasses.replace(base, row_splits=splits) for base in (one_warp, four_warps)
            for splits in (1, 2, 4, 8)]
    if block_n == 32:
      grid += [csr_spmm.SpmmConfig(block_n=32, block_nnz=32, num_warps=1, row_splits=splits)
               for splits in (1, 2, 4)]
  elif narrow:
    grid = [csr_spmm.SpmmConfig(block_n=32, block_nnz=nnz, num_warps=1, substeps=sub,
                                rows_per_program=rows)
            for nnz, sub, rows in ((16, 1, 1), (16, 2, 1), (16, 4, 1), (8, 2, 1), (8, 4, 1),
                                   (32, 1, 1), (16, 1, 2), (8, 2, 2))]
  else:
    grid = [csr_spmm.SpmmConfig(block_n=64, block_nnz=nnz, num_warps=1, rows_per_program=rows,
                                substeps=sub)
            for nnz in (8, 16) for sub in (1, 2, 4) for rows in (1, 2)]
    grid += [csr_spmm.SpmmConfig(block_n=32, block_nnz=nnz, num_warps=1, substeps=sub)
             for nnz, sub in ((16, 1), (16, 2), (8, 4))]
    grid.append(dataclasses.replace(default, prefetch="indices", substeps=1))
  return list(dict.fromkeys([default] + grid))  # the default first, each config once


def describe(config: csr_spmm.SpmmConfig) -> str:
  return (f"n{config.block_n} nnz{config.block_nnz}x{config.substeps} r{config.rows_per_program}"
          f" w{config.num_warps}{' pf-' + config.prefetch if config.prefetch != 'none' else ''}"
          f"{' split' + str(config.row_splits) if config.row_splits > 1 else ''}")


def main() -> None:
  def add(parser):
    parser.add_argument("--narrow", action="store_true", help="N = 32 cases and 32-column configs")
    parser.add_argument("--long", action="store_true", help="few long rows, rows split")
    parser.add_argument("--wide", action="store_true", help="128- and 256-column programs")
    parser.add_argument("--pieces", action="store_true", help="a sharded matrix's row pieces")

  args = bench_common.probe_arguments(__doc__, add)
  meta = bench_common.probe_meta(kernel_time="experiments.kernel_time.measure, median us",
                                 launch="row order (natural_order=True)")
  table = bench_common.ProbeTable(args.outdir, "spmm_config_sweep", "CSR SpMM row-kernel "
                                  "configs", meta, bench_common.CONFIG_SWEEP_HEADER)
  start = time.monotonic()
  for case in plan(args.smoke, args.narrow, args.long, args.wide, args.pieces):
    problem = problems.build_problem(case)
    matrix = problem.matrix
    (b_host,) = problem.operands
    operands = (jnp.asarray(matrix.data), jnp.asarray(matrix.col_indices),
                jnp.asarray(matrix.row_offsets), jnp.asarray(b_host))
    expected = jnp.dot(jnp.asarray(matrix.todense(), jnp.float32), operands[3],
                       precision=jax.lax.Precision.HIGHEST)
    num_rows = matrix.shape[0]
    default = csr_spmm.choose_config(num_rows, matrix.shape[1], case.n, operands[0].shape[0])

    def timer_of(config, record, num_rows=num_rows, operands=operands, expected=expected):
      fn = jax.jit(lambda d, c, o, b: csr_spmm.kernel_fn(
          d, c, o, b, num_rows=num_rows, config=config, natural_order=True,
          interpret=args.smoke))
      return bench_common.launch_checked(record, fn, operands, expected)

    bench_common.sweep_configs(
        table, case.key,
        configs(default, args.smoke, args.narrow, args.long, args.wide, args.pieces),
        default, timer_of, describe,
        over_budget=lambda: time.monotonic() - start > args.budget_s,
        smoke=args.smoke, fields={"nnz": problem.nnz})


if __name__ == "__main__":
  main()
