"""Which CSR SDDMM launch is fastest where jsparse trails Sputnik or ``sampled_addmm``? Times
``pallas_kernels.csr_sddmm.kernel_fn`` (the row kernel) under a grid of ``SddmmConfig``s, and the
dense-product path (``csr_sddmm_dense.kernel_fn``, "dense-path"), on the harness's own problems
(``experiments.problems``: uniform 4096 x 4096 at s >= 0.9, inner dimension 128 and 1024, where
the kernel-time run of ``experiments/results/h100-2026-11-26-kernel-time/uniform/`` lost), by
device kernel time per call (``experiments.kernel_time``), the row kernel launched in row order.

Every launch's output is checked against the float32 HIGHEST product sampled at the pattern
first; a launch that is wrong is recorded as such and not timed.

    python3 -P experiments/gpu_checks/sddmm_config_sweep.py OUTDIR [--budget-s 300] [--smoke]

Writes OUTDIR/sddmm_config_sweep.jsonl and .md (one row per case and launch, the launch the op
takes marked as the default, each time also as a ratio to the default's).
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import problems  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.grid import Case  # noqa: E402
from pallas_kernels import csr_sddmm, csr_sddmm_dense  # noqa: E402

DENSE_PATH = "dense-path"


def plan(smoke: bool) -> list[Case]:
  """The cases, in priority order."""
  if smoke:
    return [Case("sddmm", "csr", "uniform/64x48", 0.9, 16, "float32")]
  return [Case("sddmm", "csr", "uniform/4096x4096", s, k, "float32")
          for s, k in ((0.95, 1024), (0.98, 1024), (0.9, 128), (0.9, 1024), (0.95, 128),
                       (0.98, 128))]


def configs(default: csr_sddmm.SddmmConfig, smoke: bool) -> list:
  """The row kernel's default, the dense-product path, then variants of step, inner tile, warps,
  rows a program and prefetch."""
  if smoke:
    grid = [csr_sddmm.SddmmConfig(block_nnz=8, block_d=16, num_warps=1)]
  else:
    grid = [csr_sddmm.SddmmConfig(block_nnz=nnz, block_d=d, num_warps=warps)
            for nnz, d, warps in ((8, 128, 1), (16, 128, 1), (16, 128, 2), (32, 128, 2),
                                  (32, 128, 4), (64, 128, 8), (8, 256, 1), (16, 256, 2),
                                  (16, 256, 4), (32, 256, 8), (32, 64, 1), (32, 64, 2),
                                  (64, 64, 4))]
    grid += [csr_sddmm.SddmmConfig(block_nnz=16, block_d=128, num_warps=2, prefetch="indices"),
             csr_sddmm.SddmmConfig(block_nnz=32, block_d=128, num_warps=4, prefetch="indices"),
             csr_sddmm.SddmmConfig(block_nnz=16, block_d=128, num_warps=1, rows_per_program=2)]
  return [default, DENSE_PATH] + [config for config in grid if config != default]


def describe(config: csr_sddmm.SddmmConfig) -> str:
  return (f"nnz{config.block_nnz} d{config.block_d} r{config.rows_per_program} "
          f"w{config.num_warps} s{config.num_stages}"
          f"{' pf-' + config.prefetch if config.prefetch != 'none' else ''}")


def sampled_product(x: jax.Array, y: jax.Array, col_indices: np.ndarray,
                    row_offsets: np.ndarray) -> jax.Array:
  """[nse] float32: (X @ Y^T)[i, j] at each stored (i, j) (HIGHEST), 0 at padding positions."""
  product = jnp.dot(x.astype(jnp.float32), y.astype(jnp.float32).T,
                    precision=jax.lax.Precision.HIGHEST)
  rows = np.repeat(np.arange(len(row_offsets) - 1), np.diff(row_offsets))
  values = product[jnp.asarray(rows), jnp.asarray(col_indices[:len(rows)])]
  return jnp.zeros((len(col_indices),), jnp.float32).at[:len(rows)].set(values)


def main() -> None:
  args = bench_common.probe_arguments(__doc__)
  meta = bench_common.probe_meta(kernel_time="experiments.kernel_time.measure, median us",
                                 launch="row kernel in row order (natural_order=True)")
  table = bench_common.ProbeTable(args.outdir, "sddmm_config_sweep", "CSR SDDMM launches",
                                  meta, bench_common.CONFIG_SWEEP_HEADER)
  start = time.monotonic()
  for case in plan(args.smoke):
    problem = problems.build_problem(case)
    matrix = problem.matrix
    col_host, offsets_host = np.asarray(matrix.col_indices), np.asarray(matrix.row_offsets)
    x, y = (jnp.asarray(operand) for operand in problem.operands)
    operands = (jnp.asarray(col_host), jnp.asarray(offsets_host), x, y)
    expected = sampled_product(x, y, col_host, offsets_host)
    num_rows, nse, inner = matrix.shape[0], col_host.shape[0], x.shape[1]
    row_default = csr_sddmm.choose_config(num_rows, nse, inner)
    takes_dense = csr_sddmm_dense.prefers_dense(num_rows, matrix.shape[1], inner, nse, x.dtype)

    def timer_of(config, record, num_rows=num_rows, operands=operands, expected=expected):
      if config == DENSE_PATH:
        fn = jax.jit(lambda c, o, x, y: csr_sddmm_dense.kernel_fn(
            c, o, x, y, num_rows=num_rows, interpret=args.smoke))
      else:
        fn = jax.jit(lambda c, o, x, y: csr_sddmm.kernel_fn(
            c, o, x, y, num_rows=num_rows, config=config, natural_order=True,
            interpret=args.smoke))
      return bench_common.launch_checked(record, fn, operands, expected)

    bench_common.sweep_configs(
        table, case.key, configs(row_default, args.smoke),
        DENSE_PATH if takes_dense else row_default, timer_of, describe,
        over_budget=lambda: time.monotonic() - start > args.budget_s, smoke=args.smoke,
        fields={"nnz": problem.nnz, "op_takes_dense_path": takes_dense})


if __name__ == "__main__":
  main()
