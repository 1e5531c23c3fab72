"""CSR SDDMM (values ``X[i] . Y[j]`` at every stored ``(i, j)``) as a Pallas (Triton) kernel.

One program handles one row ``i`` of the pattern (or ``rows_per_program`` rows, interleaved) (rows
longest first in power-of-two buckets, ``_rows.rows_by_length``). Each step takes ``block_nnz`` of
the row's column indices, gathers the matching rows of ``Y`` as a ``[block_nnz, block_d]`` tile
(contiguous along the inner dimension) and multiplies it with the row ``X[i]``; when ``D <=
block_d`` the row of ``X`` is loaded once per program and reused for every step. Float32
accumulation.

References: T. Gale et al., "Sparse GPU Kernels for Deep Learning", SC20 (arXiv 2006.10901).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels import _common, _rows

PREFETCH_MODES = ("none", "indices", "tile")


@dataclasses.dataclass(frozen=True)
class SddmmConfig:
  """Tile sizes and launch parameters of ``kernel_fn``.

  Attributes:
    block_nnz: stored entries of a row computed per step (a power of two).
    block_d: inner-dimension tile (a power of two); ``D`` is covered in ``cdiv(D, block_d)`` tiles.
    num_warps: Triton warps per program.
    num_stages: Triton software-pipelining stages.
    rows_per_program: rows of the launch order one program computes (a power of two), their
      steps interleaved (more loads in flight per program).
    prefetch: what a step loads for the next one, by hand (Triton software-pipelines only loops
      that feed a ``dot``): ``"none"``; ``"indices"``, the next step's column indices (the
      gather of Y no longer waits on a load issued in the same step); ``"tile"``, also the next
      step's gathered Y tile when ``D <= block_d`` (one D tile; otherwise as ``"indices"``).
  """

  block_nnz: int = 32
  block_d: int = 128
  num_warps: int = 4
  num_stages: int = 2
  rows_per_program: int = 1
  prefetch: str = "none"

  def __post_init__(self):
    for name in ("block_nnz", "block_d", "rows_per_program"):
      value = getattr(self, name)
      if value < 1 or value & (value - 1):
        raise ValueError(f"SddmmConfig.{name} must be a power of two, got {value}")
    if self.prefetch not in PREFETCH_MODES:
      raise ValueError(f"SddmmConfig.prefetch must be one of {PREFETCH_MODES}, got "
                       f"{self.prefetch!r}")


def choose_config(num_rows: int, nse: int, inner: int) -> SddmmConfig:
  """A heuristic config: the whole inner dimension in one tile up to 128 (X loaded once per
  row), and a 4096-element register tile."""
  block_d = min(128, pl.next_power_of_2(max(inner, 1)))
  mean_row = nse / max(num_rows, 1)
  block_nnz = min(4096 // block_d, max(16, pl.next_power_of_2(max(int(mean_row), 1))))
  return SddmmConfig(block_nnz=block_nnz, block_d=block_d,
                     num_warps=4 if block_nnz * block_d <= 2048 else 8)


# Lanes of the extra program that zeroes the padding positions.
ZERO_BLOCK = 256


def _sddmm_kernel(order_ref, offsets_ref, cols_ref, x_ref, y_ref, out_ref, *, inner: int,
                  block_nnz: int, block_d: int, num_rows: int, rows_per_program: int,
                  natural_order: bool, prefetch: str, fma_ptx: bool):
  """Programs ``0 .. P - 1`` compute rows; program ``P`` (the last) zeroes the padding
  positions ``row_offsets[M] ..`` of the output (which is not zero-filled beforehand)."""
  programs = pl.cdiv(num_rows, rows_per_program)
  program = pl.program_id(0)

  @pl.when(program == programs)
  def _zero_padding():
    tail, size = offsets_ref[num_rows], out_ref.shape[0]
    lanes = jnp.arange(ZERO_BLOCK, dtype=jnp.int32)
    zeros = jnp.zeros((ZERO_BLOCK,), out_ref.dtype)

    def body(i, carry):
      # Lanes past the end store 0 to the last position (padding whenever the loop runs): no
      # masked store, which interpret mode runs as a read-modify-write.
      plgpu.store(out_ref.at[jnp.minimum(tail + i * ZERO_BLOCK + lanes, size - 1)], zeros)
      return carry

    jax.lax.fori_loop(0, (size - tail + ZERO_BLOCK - 1) // ZERO_BLOCK, body, 0)

  # program_id is read here, outside the branches (interpret mode lowers none inside a cond).
  pl.when(program < programs)(functools.partial(
      _sddmm_rows, program, order_ref, offsets_ref, cols_ref, x_ref, y_ref, out_ref, inner=inner,
      block_nnz=block_nnz, block_d=block_d, num_rows=num_rows,
      rows_per_program=rows_per_program, natural_order=natural_order, prefetch=prefetch,
      fma_ptx=fma_ptx))


def _sddmm_rows(program, order_ref, offsets_ref, cols_ref, x_ref, y_ref, out_ref, *, inner: int,
                block_nnz: int, block_d: int, num_rows: int, rows_per_program: int,
                natural_order: bool, prefetch: str, fma_ptx: bool):
  """The stored values of program ``program``'s rows."""
  first = program * rows_per_program
  # The last program's slots past row M - 1 repeat its first row: they compute and store the
  # same values to the same addresses.
  rows = _rows.launch_slots(first, rows_per_program, num_rows)
  if not natural_order:
    rows = [order_ref[slot] for slot in rows]
  starts = [offsets_ref[row] for row in rows]
  ends = [offsets_ref[row + 1] for row in rows]
  d_tiles = pl.cdiv(inner, block_d)
  lanes = jnp.arange(block_d, dtype=jnp.int32)
  # Static: with D a multiple of the tile no dimension is masked (row loads stay vectorized).
  ragged_d = inner % block_d != 0
  if d_tiles > 1 and prefetch == "tile":
    prefetch = "indices"  # a tile a step would be d_tiles tiles: only the indices run ahead

  def load_x(row, d_tile):
    dims = d_tile * block_d + lanes
    return plgpu.load(x_ref.at[row, dims], mask=dims < inner if ragged_d else None,
                      other=0 if ragged_d else None).astype(jnp.float32)

  x_once = [load_x(row, 0) if d_tiles == 1 else None for row in rows]

  def valid_at(index, start, end):
    return start + index * block_nnz + jnp.arange(block_nnz, dtype=jnp.int32) < end

  def load_cols(index, start, end):
    return plgpu.load(cols_ref.at[pl.ds(start + index * block_nnz, block_nnz)],
                      mask=valid_at(index, start, end), other=0)

  def load_tile(cols, valid, d_tile):
    """The ``[block_nnz, block_d]`` slice ``d_tile`` of Y's rows at ``cols``, float32."""
    dims = d_tile * block_d + lanes
    tile_mask = (valid[:, None] & (dims < inner)[None, :] if ragged_d
                 else jnp.broadcast_to(valid[:, None], (block_nnz, block_d)))
    return plgpu.load(y_ref.at[cols[:, None], dims[None, :]], mask=tile_mask,
                      other=0).astype(jnp.float32)

  # Per row, the loop carries what earlier steps loaded for this one: nothing (none), this
  # step's column indices (indices), or this step's Y tile and the next step's indices (tile).
  def first_carry(start, end):
    if prefetch == "none":
      return ()
    cols = load_cols(0, start, end)
    if prefetch == "indices":
      return (cols,)
    return (load_tile(cols, valid_at(0, start, end), 0), load_cols(1, start, end))

  def row_step(index, carry, row, start, end, x_once):
    valid = valid_at(index, start, end)
    if prefetch == "tile":
      tile, next_cols = carry
      acc = tile * x_once[None, :]
      next_carry = (load_tile(next_cols, valid_at(index + 1, start, end), 0),
                    load_cols(index + 2, start, end))
    else:
      if prefetch == "none":
        cols, next_carry = load_cols(index, start, end), ()
      else:
        (cols,), next_carry = carry, (load_cols(index + 1, start, end),)
      acc = jnp.zeros((block_nnz, block_d), jnp.float32)
      for d_tile in range(d_tiles):  # static: D is a shape
        x_row = x_once if x_once is not None else load_x(row, d_tile)
        tile = load_tile(cols, valid, d_tile)
        acc = _common.multiply_add(tile, jnp.broadcast_to(x_row[None, :], tile.shape), acc,
                                   ptx=fma_ptx)
    plgpu.store(out_ref.at[pl.ds(start + index * block_nnz, block_nnz)],
                jnp.sum(acc, axis=1).astype(out_ref.dtype), mask=valid)
    return next_carry

  def step(index, carries):
    return tuple(row_step(index, carry, *args)
                 for carry, *args in zip(carries, rows, starts, ends, x_once))

  longest = ends[0] - starts[0]
  for start, end in zip(starts[1:], ends[1:]):
    longest = jnp.maximum(longest, end - start)
  jax.lax.fori_loop(0, (longest + block_nnz - 1) // block_nnz, step,
                    tuple(first_carry(start, end) for start, end in zip(starts, ends)))


@functools.partial(jax.jit, static_argnames=("num_rows", "config", "interpret", "natural_order"))
def kernel_fn(col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array, y: jax.Array, *,
              num_rows: int, config: SddmmConfig | None = None, interpret: bool = False,
              row_order: jax.Array | None = None, natural_order: bool = False) -> jax.Array:
  """Stored values ``x[i] . y[j]`` at every stored ``(i, j)`` of a CSR pattern ``[M, N]``.

  Args:
    col_indices: ``[nse]`` int32, the column (in ``[0, N)``) of each stored entry.
    row_offsets: ``[M + 1]`` int32 CSR row offsets; positions ``>= row_offsets[M]`` are padding.
    x: ``[M, D]`` float32, bfloat16 or float16.
    y: ``[N, D]``, the same dtype as ``x``.
    num_rows: ``M``.
    config: tile sizes; ``choose_config`` when None.
    interpret: run in Pallas interpret mode (any platform).
    row_order: optional ``[M]`` int32 launch order of the rows; ``_rows.rows_by_length`` when None.
    natural_order: launch the rows in their natural order (no schedule computed, ``row_order``
      ignored): what ``rows_by_length`` gives anyway when ``_rows.natural_order_is_schedule``
      holds, which the CSR format checks when it is built on the host.

  Returns:
    ``[nse]`` in ``x``'s dtype (accumulated in float32); 0 at padding positions.
  """
  _rows.check_sddmm_operands(col_indices, row_offsets, x, y, num_rows)
  nse, inner = col_indices.shape[0], x.shape[1]
  if num_rows == 0 or nse == 0 or inner == 0:
    return jnp.zeros((nse,), x.dtype)
  config = config or choose_config(num_rows, nse, inner)
  if natural_order:
    row_order = row_offsets  # a placeholder operand: the kernel does not read it
  elif row_order is None:
    row_order = _rows.rows_by_length(row_offsets,
                                       max_row_length=min(y.shape[0], col_indices.shape[0]))
  kernel = functools.partial(_sddmm_kernel, inner=inner, block_nnz=config.block_nnz,
                             block_d=config.block_d, num_rows=num_rows,
                             rows_per_program=config.rows_per_program,
                             natural_order=natural_order, prefetch=config.prefetch,
                             fma_ptx=not interpret)
  values = pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((nse,), x.dtype),
      # One more program zeroes the padding positions, in place of a select over the output
      # after the call (an XLA kernel of 1.1-2.0 us on the DLMC matrices, H100: as long as the
      # row kernel on some of them; experiments/results/h100-2026-11-26-kernel-time/).
      grid=(pl.cdiv(num_rows, config.rows_per_program) + 1,),
      compiler_params=plgpu.CompilerParams(num_warps=config.num_warps,
                                           num_stages=config.num_stages),
      interpret=interpret,
  )(row_order, row_offsets, col_indices, x, y)
  return values


@functools.partial(jax.jit, static_argnames=("num_rows",))
def reference_fn(col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array, y: jax.Array, *,
                 num_rows: int) -> jax.Array:
  """The SDDMM values in plain ``jax.numpy`` (float32 accumulation; 0 at padding positions),
  same arguments as ``kernel_fn``."""
  del num_rows  # implied by row_offsets
  rows = _rows.entry_rows(row_offsets, col_indices.shape[0])
  x_rows = jnp.take(x, rows, axis=0, mode="fill", fill_value=0).astype(jnp.float32)
  values = jnp.sum(x_rows * y[col_indices].astype(jnp.float32), axis=-1)
  return values.astype(x.dtype)
