"""Which Mosaic GPU BSR launch is fastest at N = 1024, where issue 8's time target is missed?
Times ``pallas_kernels.bsr_spmm_mgpu.kernel_fn`` under a grid of ``MgpuBsrSpmmConfig``s (one
and two compute warpgroups, 64- to 256-column tiles, 2-4 slots: fewer slots leave room for
more programs an SM) on the benchmark's cases (``bsr_mgpu_bench.py``: bf16, A 4096x4096 and
14336x4096, 64x64 and 128x64 blocks, random block masks of density 0.05-0.5), beside XLA's
dense ``jnp.dot``, every line by device kernel time per call (``experiments.kernel_time``).

Every launch's output is checked against the float32 product first; a launch that is wrong is
recorded as such and not timed.

    python3 -P experiments/gpu_checks/bsr_config_probe.py OUTDIR [--budget-s 300] [--smoke]
        [--densities 0.05,0.1] [--shapes 4096x4096,14336x4096]

Writes OUTDIR/bsr_config_probe.jsonl and .md: one row per case and launch, the default
(``default_config`` given the mean blocks a block row) marked, each time also as a ratio to the
default's; each record holds issue 8's target for its case (1.3 x kept x dense + 5 us).
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.gpu_checks.bsr_masks import block_mask, bsr_operands  # noqa: E402
from pallas_kernels import bsr_spmm_mgpu  # noqa: E402

DENSE = "dense"
TOLERANCE = 2e-2  # relative max error of a bf16 output (rounding alone: ~4e-3)
BLOCK_SHAPES = ((64, 64), (128, 64))


def configs(block_shape: tuple[int, int], num_n: int) -> list[bsr_spmm_mgpu.MgpuBsrSpmmConfig]:
  """Every one- and two-warpgroup launch whose accumulator fits the registers, whose slots and
  output tile fit the shared memory and whose program width divides ``num_n``."""
  bm, _ = block_shape
  grid = []
  for warpgroups in (1, 2):
    for tile_n in (64, 128, 256):
      for slots in (2, 3, 4):
        config = bsr_spmm_mgpu.MgpuBsrSpmmConfig(tile_n=tile_n, max_concurrent_steps=slots,
                                                 compute_warpgroups=warpgroups)
        if (bm * tile_n <= bsr_spmm_mgpu.MAX_ACCUMULATOR and num_n % config.program_n == 0
            and config.smem_bytes(block_shape, 2) <= bsr_spmm_mgpu.SMEM_BYTES):
          grid.append(config)
  return grid


def describe(config: bsr_spmm_mgpu.MgpuBsrSpmmConfig) -> str:
  return f"{config.compute_warpgroups}wg n{config.tile_n} s{config.max_concurrent_steps}"


def main() -> None:
  def add(parser):
    parser.add_argument("--densities", default="0.05,0.1,0.2,0.5")
    parser.add_argument("--shapes", default="4096x4096,14336x4096")
    parser.add_argument("--n", type=int, default=1024)
  args = bench_common.probe_arguments(__doc__, add)
  densities = [float(d) for d in args.densities.split(",")]
  shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
  num_n = args.n
  if args.smoke:
    shapes, num_n, densities = [(256, 128)], 128, densities[:2]
  meta = bench_common.probe_meta(kernel_time="experiments.kernel_time.measure, median us",
                                 dtype="bfloat16", n=num_n)
  table = bench_common.ProbeTable(args.outdir, "bsr_config_probe", "Mosaic GPU BSR launches",
                                  meta, bench_common.CONFIG_SWEEP_HEADER)
  start = time.monotonic()
  over_budget = lambda: time.monotonic() - start > args.budget_s  # noqa: E731
  rng = np.random.default_rng(0)
  for shape in shapes:
    b = jax.random.normal(jax.random.key(7 + num_n), (shape[1], num_n), jnp.bfloat16)
    dense_a = jax.random.normal(jax.random.key(shape[0]), shape, jnp.bfloat16)
    dense_fields: dict = {}

    def dense_timer(config, record, dense_a=dense_a, b=b):
      expected = jnp.dot(dense_a, b, preferred_element_type=jnp.float32)
      return bench_common.launch_checked(record, jax.jit(jnp.dot), (dense_a, b), expected)

    bench_common.sweep_configs(table, f"{shape[0]}x{shape[1]} N{num_n}", [DENSE], DENSE,
                               dense_timer, str, over_budget=over_budget, smoke=args.smoke,
                               fields=dense_fields, max_rel_err=TOLERANCE)
    dense_us = table.records[-1].get("kernel_median_us")
    for block_shape in BLOCK_SHAPES:
      masks = {d: block_mask(rng, shape, block_shape, d) for d in densities}
      nse = max(int(mask.sum()) for mask in masks.values())  # one compilation per launch
      grid = configs(block_shape, num_n)
      compiled = {}

      def jitted(config, block_shape=block_shape, compiled=compiled, shape=shape):
        if config not in compiled:
          compiled[config] = jax.jit(lambda data, cols, offsets, x: bsr_spmm_mgpu.kernel_fn(
              data, cols, offsets, x, shape=shape, config=config, interpret=args.smoke))
        return compiled[config]

      for index, (density, mask) in enumerate(masks.items()):
        data, cols, offsets, a = bsr_operands(jax.random.key(index), mask, block_shape, nse)
        operands = (data, cols, offsets, b)
        expected = jnp.dot(a, b, preferred_element_type=jnp.float32)
        kept = float(mask.mean())
        blocks_per_row = float(mask.sum()) / mask.shape[0]
        default = bsr_spmm_mgpu.default_config(block_shape=block_shape, num_rows=shape[0],
                                               num_n=num_n, blocks_per_row=blocks_per_row)
        target = 1.3 * kept * dense_us + 5.0 if dense_us else None

        def timer_of(config, record, operands=operands, expected=expected):
          reason = bsr_spmm_mgpu.supports(*operands, shape=shape, config=config)
          if reason is not True:
            raise ValueError(f"supports() refused: {reason}")
          return bench_common.launch_checked(record, jitted(config), operands, expected)

        case = (f"{shape[0]}x{shape[1]} b{block_shape[0]}x{block_shape[1]} N{num_n} "
                f"d={density} (target {target:.1f})" if target else f"d={density}")
        bench_common.sweep_configs(
            table, case, [default] + [c for c in grid if c != default], default, timer_of,
            describe, over_budget=over_budget, smoke=args.smoke, max_rel_err=TOLERANCE,
            fields={"shape": list(shape), "block_shape": list(block_shape), "n": num_n,
                    "density": density, "kept": kept, "blocks_per_row": blocks_per_row,
                    "dense_us": dense_us, "target_us": target})


if __name__ == "__main__":
  main()
