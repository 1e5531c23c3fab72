"""CSR SpMV ``A @ x`` as a Pallas (Triton) kernel: memory-bound, several rows per program.

One program reduces ``rows_per_program`` rows at once: rows are taken longest first in power-of-two
buckets (``_rows.rows_by_length``), so rows that share a program differ in length by less than 2x
and few lanes idle; each step reads a ``[rows_per_program, block_nnz]`` tile of values and column
indices (contiguous within each row) and gathers the matching entries of ``x``. Float32 accumulation
in a register tile, reduced once per row.

References: N. Bell, M. Garland, "Implementing sparse matrix-vector multiplication on
throughput-oriented processors", SC09 (the CSR-vector kernel); T. Gale et al., SC20 (row swizzle).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels import _common, _rows


@dataclasses.dataclass(frozen=True)
class SpmvConfig:
  """Tile sizes and launch parameters of ``kernel_fn``.

  Attributes:
    rows_per_program: rows reduced together by one program (a power of two).
    block_nnz: nonzeros of each row consumed per step (a power of two).
    num_warps: Triton warps per program.
    num_stages: Triton software-pipelining stages.
    prefetch: load the next step's column indices and values before this step's gather of x
      (the loop has no ``dot``, so Triton does not pipeline it; without this each step's gather
      waits on loads issued in the same step).
    aligned_loads: Sputnik's row-offset memory alignment. A row's steps start at its first
      position rounded down to a multiple of 16 bytes' worth of entries, and steps that stay
      inside the arrays load without a mask, so the loads of values and indices are whole
      16-byte vectors (a per-entry mask, or a start Triton cannot prove aligned, makes them
      one 4-byte load an entry). Entries before the row's start or past its end are read and
      zeroed. Excludes ``prefetch``.
  """

  rows_per_program: int = 4
  block_nnz: int = 128
  num_warps: int = 4
  num_stages: int = 2
  prefetch: bool = False
  aligned_loads: bool = False

  def __post_init__(self):
    for name in ("rows_per_program", "block_nnz"):
      value = getattr(self, name)
      if value < 1 or value & (value - 1):
        raise ValueError(f"SpmvConfig.{name} must be a power of two, got {value}")
    if self.prefetch and self.aligned_loads:
      raise ValueError("SpmvConfig.prefetch and aligned_loads exclude each other")


# Launches of many rows (M >= LONG_LAUNCH_ROWS) with rows shorter than ALIGNED_MAX_MEAN_ROW take
# aligned loads over 32-entry steps of 16 rows. H100, float32, 16384 x 16384 uniform random
# (experiments/results/h100-2026-11-26-spmv/round2/), default -> this launch: s = 0.9 164.0 ->
# 138.9 us, s = 0.98 65.1 -> 41.3, s = 0.99 35.3 -> 24.7; but s = 0.7 (rows of ~4900) 370 -> 388,
# and at 4096 x 4096 s = 0.9 10.1 -> 13.2 (s = 0.98 even).
LONG_LAUNCH_ROWS = 8192
ALIGNED_MAX_MEAN_ROW = 4096


# Rows of >= ONE_ROW_MIN_MEAN_ROW entries on average, in launches of >= ONE_ROW_MIN_ROWS rows,
# take one row a program on one warp, in 512-entry steps: many small programs keep more loads in
# flight. H100, float32, uniform random (experiments/results/h100-2026-11-26-spmv/one-row/), us,
# the launch before -> this: 16384 x 16384 at s = 0.7 / 0.9 / 0.98 / 0.99 345.3 / 151.2 / 44.5 /
# 26.2 -> 271.9 / 95.5 / 24.7 / 18.5 (cuSPARSE 219.3 / 81.9 / 26.6 / 22.7); 32768 x 32768 at
# s = 0.99 144.2 -> 44.4 (cuSPARSE 67.8); 4096 x 4096 at s = 0.7 / 0.9 24.4 / 10.8 -> 21.2 / 9.4,
# at s = 0.95 even (9.1 / 9.3), at s = 0.98 (82 entries a row) slower (7.1 / 8.4).
# Two or four warps a row were 1.1-3x slower than one.
ONE_ROW_MIN_MEAN_ROW = 128
ONE_ROW_MIN_ROWS = 1024


def choose_config(num_rows: int, nse: int) -> SpmvConfig:
  """A heuristic config: one row a program on one warp for launches of many rows with rows of
  >= 128 entries on average (see ``ONE_ROW_MIN_MEAN_ROW``); else for many rows of moderate
  length, aligned loads over 32-entry steps of 16 rows (see ``LONG_LAUNCH_ROWS``); else the
  nonzero step near the mean row length (16 to 128), and enough rows per program for a
  512-element tile."""
  mean_row = nse / max(num_rows, 1)
  if num_rows >= ONE_ROW_MIN_ROWS and mean_row >= ONE_ROW_MIN_MEAN_ROW:
    return SpmvConfig(rows_per_program=1, block_nnz=512, num_warps=1)
  if num_rows >= LONG_LAUNCH_ROWS and 32 <= mean_row < ALIGNED_MAX_MEAN_ROW:
    return SpmvConfig(rows_per_program=16, block_nnz=32, aligned_loads=True)
  block_nnz = min(128, max(16, pl.next_power_of_2(max(int(mean_row), 1))))
  return SpmvConfig(rows_per_program=max(1, 512 // block_nnz), block_nnz=block_nnz)


def _spmv_kernel(order_ref, offsets_ref, data_ref, cols_ref, x_ref, out_ref, *, num_rows: int,
                 rows_per_program: int, block_nnz: int, natural_order: bool, prefetch: bool,
                 aligned_loads: bool, fma_ptx: bool):
  first = pl.program_id(0) * rows_per_program
  slots = first + jnp.arange(rows_per_program, dtype=jnp.int32)
  # The last program's slots past row M - 1 repeat its first row: they compute and store the
  # same value to the same address (no padded order or output, so no XLA ops around the kernel).
  rows = jnp.where(slots < num_rows, slots, first)
  if not natural_order:
    rows = order_ref[rows]
  starts = offsets_ref[rows]
  ends = offsets_ref[rows + 1]
  lanes = jnp.arange(block_nnz, dtype=jnp.int32)
  zeros = jnp.zeros((rows_per_program, block_nnz), jnp.float32)

  def multiply(cols, values, valid, acc):
    gathered = plgpu.load(x_ref.at[cols], mask=valid, other=0)
    return _common.multiply_add(values.astype(jnp.float32), gathered.astype(jnp.float32), acc,
                                ptx=fma_ptx)

  def aligned_sum():
    """The rows' sums over aligned steps (``SpmvConfig.aligned_loads``)."""
    # 16 bytes of the narrower of values and indices; (start // align) * align is what lets
    # Triton's alignment analysis prove the vectors aligned.
    align = 16 // min(data_ref.dtype.itemsize, cols_ref.dtype.itemsize)
    bases = (starts // align) * align
    nse = data_ref.shape[0]

    def aligned_entries(index, inside_arrays: bool):
      positions = bases[:, None] + index * block_nnz + lanes[None, :]
      valid = (positions >= starts[:, None]) & (positions < ends[:, None])
      mask = None if inside_arrays else positions < nse
      cols = plgpu.load(cols_ref.at[positions], mask=mask, other=None if inside_arrays else 0)
      values = plgpu.load(data_ref.at[positions], mask=mask, other=None if inside_arrays else 0)
      # Entries of neighbouring rows (or padding, or garbage) are zeroed: 0 * inf would be NaN.
      return cols, jnp.where(valid, values, 0), valid

    steps = (jnp.max(ends - bases) + block_nnz - 1) // block_nnz
    # Steps whose loads stay inside the arrays for every row of the program run unmasked.
    unmasked = jnp.clip((nse - jnp.max(bases)) // block_nnz, 0, steps)
    acc = jax.lax.fori_loop(
        0, unmasked, lambda index, acc: multiply(*aligned_entries(index, True), acc), zeros)
    return jax.lax.fori_loop(
        unmasked, steps, lambda index, acc: multiply(*aligned_entries(index, False), acc), acc)

  def entries(index):
    """Step ``index``'s column indices, values and mask (0 past each row's end)."""
    positions = starts[:, None] + index * block_nnz + lanes[None, :]
    valid = positions < ends[:, None]
    cols = plgpu.load(cols_ref.at[positions], mask=valid, other=0)
    values = plgpu.load(data_ref.at[positions], mask=valid, other=0)
    return cols, values, valid

  def prefetched_step(index, carry):
    acc, current = carry
    upcoming = entries(index + 1)  # masked past every row's end
    return multiply(*current, acc), upcoming

  if aligned_loads:
    acc = aligned_sum()
  else:
    steps = (jnp.max(ends - starts) + block_nnz - 1) // block_nnz
    if prefetch:
      acc, _ = jax.lax.fori_loop(0, steps, prefetched_step, (zeros, entries(0)))
    else:
      acc = jax.lax.fori_loop(0, steps, lambda index, acc: multiply(*entries(index), acc), zeros)
  out_ref[rows] = jnp.sum(acc, axis=1).astype(out_ref.dtype)


@functools.partial(jax.jit, static_argnames=("num_rows", "config", "interpret", "natural_order"))
def kernel_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array, *,
              num_rows: int, config: SpmvConfig | None = None, interpret: bool = False,
              row_order: jax.Array | None = None, natural_order: bool = False) -> jax.Array:
  """``A @ x`` for a CSR matrix ``A`` ``[M, K]`` and a dense vector ``x`` ``[K]``.

  Args:
    data: ``[nse]`` float32, bfloat16 or float16; positions ``>= row_offsets[M]`` are padding.
    col_indices: ``[nse]`` int32, the column (in ``[0, K)``) of each stored value.
    row_offsets: ``[M + 1]`` int32 CSR row offsets.
    x: ``[K]``, the same dtype as ``data``.
    num_rows: ``M``.
    config: tile sizes; ``choose_config`` when None.
    interpret: run in Pallas interpret mode (any platform).
    row_order: optional ``[M]`` int32 launch order of the rows; ``_rows.rows_by_length`` when None.
    natural_order: launch the rows in their natural order (no schedule computed, ``row_order``
      ignored): what ``rows_by_length`` gives anyway when ``_rows.natural_order_is_schedule``
      holds, which the CSR format checks when it is built on the host.

  Returns:
    ``[M]`` in ``data``'s dtype, accumulated in float32.
  """
  _rows.check_csr_operands(data, col_indices, row_offsets, num_rows)
  _rows.check_value_dtype("data", data)
  if x.ndim != 1 or x.dtype != data.dtype:
    raise ValueError(f"x must be 1-D [K] of data's dtype {data.dtype}, got {x.dtype} "
                     f"{tuple(x.shape)}")
  if num_rows == 0 or data.shape[0] == 0:
    return jnp.zeros((num_rows,), data.dtype)
  config = config or choose_config(num_rows, data.shape[0])
  if natural_order:
    row_order = row_offsets  # a placeholder operand: the kernel does not read it
  elif row_order is None:
    row_order = _rows.rows_by_length(row_offsets,
                                       max_row_length=min(x.shape[0], data.shape[0]))
  kernel = functools.partial(_spmv_kernel, num_rows=num_rows,
                             rows_per_program=config.rows_per_program,
                             block_nnz=config.block_nnz, natural_order=natural_order,
                             prefetch=config.prefetch, aligned_loads=config.aligned_loads,
                             fma_ptx=not interpret)
  return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((num_rows,), data.dtype),
      grid=(pl.cdiv(num_rows, config.rows_per_program),),
      compiler_params=plgpu.CompilerParams(num_warps=config.num_warps,
                                           num_stages=config.num_stages),
      interpret=interpret,
  )(row_order, row_offsets, data, col_indices, x)


@functools.partial(jax.jit, static_argnames=("num_rows",))
def reference_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array,
                 *, num_rows: int) -> jax.Array:
  """``A @ x`` in plain ``jax.numpy`` (float32 accumulation), same arguments as ``kernel_fn``."""
  rows = _rows.entry_rows(row_offsets, col_indices.shape[0])
  contributions = data.astype(jnp.float32) * x[col_indices].astype(jnp.float32)
  return jax.ops.segment_sum(contributions, rows, num_segments=num_rows).astype(data.dtype)
