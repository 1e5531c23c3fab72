"""Tiled-format SpMM for skinny X without expanding W: each stored value times X's row at its
column, for decoding (N = 1 to 16).

W [M, K] is the tiled format of ``jsparse.formats.tiled``: [tm, tk] tiles whose values are packed
tile by tile, row by row, with each value's column within its tile in ``value_columns`` (uint8)
and each tile row's first position in ``row_offsets`` [Mt, Kt, tm]. In that storage order a tile
row's values end where the next tile row's begin, so the offsets alone give every tile row's
span: this kernel never reads the bitmaps.

A program owns ``tile_rows`` tile rows (``tile_rows * tm`` rows of W) and one slice of the tile
columns (split-K: float32 partial sums added afterwards). For each tile column it loads its rows'
offsets and counts (the next tile's are loaded one step ahead), then walks their values in chunks
of ``chunk``: values and columns (masked past each row's count), X's entries at those columns
(X is small and cached), multiply-adds in float32. Work and bytes follow the stored values:
2 + 1 bytes a value of W (bfloat16), where ``tiled_spmm`` expands every element of every tile.

Triton constraints (``gpu_supported``): tm * tile_rows, chunk and block_n powers of two
(block_n 1 allowed: no ``dot`` here).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common

WORD_BITS = 32


@dataclasses.dataclass(frozen=True)
class TiledGatherConfig:
  """Columns of X per program (1 or a power of two), tile rows per program, values of a tile row
  per inner step, K slices (split-K) and Triton launch parameters."""

  block_n: int = 1
  tile_rows: int = 1
  chunk: int = 32
  num_splits: int = 1
  num_warps: int = 2
  num_stages: int = 1

  def __post_init__(self):
    for name in ("block_n", "tile_rows", "chunk", "num_splits"):
      if getattr(self, name) < 1:
        raise ValueError(f"TiledGatherConfig.{name}={getattr(self, name)} must be >= 1")


def gpu_supported(tile_shape: tuple[int, int], config: TiledGatherConfig) -> bool | str:
  """True when the Triton backend can compile this call, else the reason why not."""
  for name, size in (("tm * tile_rows", tile_shape[0] * config.tile_rows),
                     ("chunk", config.chunk), ("block_n", config.block_n)):
    if not _common.is_power_of_two(size):
      return f"{name}={size} must be a power of two for the Triton backend"
  return True


def _offsets_with_end(bitmaps: jax.Array, row_offsets: jax.Array) -> jax.Array:
  """[Mt * Kt * tm + 1] of row_offsets' dtype: the tile rows' offsets in storage order, then
  where the last one's values end (its offset plus its set bits)."""
  flat = row_offsets.reshape(-1)
  last_count = jnp.sum(jax.lax.population_count(bitmaps[-1, -1, -1])).astype(flat.dtype)
  return jnp.concatenate([flat, (flat[-1] + last_count)[None]])


def check_arguments(data, value_columns, bitmaps, row_offsets, dense, shape) -> None:
  """Shapes and dtypes ``kernel_fn`` needs; raises ValueError/TypeError naming the argument."""
  if data.ndim != 1:
    raise ValueError(f"data must be 1-D [nse], got shape {data.shape}")
  if value_columns.shape != data.shape or value_columns.dtype != jnp.uint8:
    raise TypeError(f"value_columns must be uint8 {data.shape} (one per value), got "
                    f"{value_columns.dtype} {value_columns.shape}")
  if bitmaps.ndim != 4 or bitmaps.dtype != jnp.uint32:
    raise TypeError(f"bitmaps must be uint32 [Mt, Kt, tm, tk / 32], got {bitmaps.dtype} "
                    f"{bitmaps.shape}")
  if row_offsets.shape != bitmaps.shape[:3]:
    raise ValueError(f"row_offsets must have shape {bitmaps.shape[:3]} (one per tile row), got "
                     f"{row_offsets.shape}")
  if dense.ndim != 2 or dense.shape[0] != shape[1] or dense.dtype != data.dtype:
    raise ValueError(f"dense must be [K={shape[1]}, N] of data's dtype {data.dtype}, got "
                     f"{dense.dtype} {dense.shape}")


def kernel_fn(data: jax.Array, value_columns: jax.Array, bitmaps: jax.Array,
              row_offsets: jax.Array, dense: jax.Array, *, shape: tuple[int, int],
              config: TiledGatherConfig = TiledGatherConfig(),
              interpret: bool = False) -> jax.Array:
  """``W @ X`` for a tiled matrix W, from its values, their columns and the row offsets.

  Args:
    data: [nse] packed values (float16, bfloat16 or float32).
    value_columns: uint8 [nse], each value's column within its tile.
    bitmaps: uint32 [Mt, Kt, tm, tk / 32] (only their shape and the last tile row's bits are
      used: the end of the last span).
    row_offsets: int32/int64 [Mt, Kt, tm], position in data of each tile row's first value.
    dense: X [K, N] of data's dtype.
    shape: (M, K) of W.
    config: launch parameters.
    interpret: run in the Pallas interpreter (any platform).

  Returns:
    [M, N] of data's dtype, accumulated in float32.
  """
  check_arguments(data, value_columns, bitmaps, row_offsets, dense, shape)
  grid_m, grid_k, tm, words = bitmaps.shape
  tk = words * WORD_BITS
  num_n, block_n = dense.shape[1], config.block_n
  if data.shape[0] == 0:
    return jnp.zeros((shape[0], num_n), data.dtype)
  tile_rows, chunk = config.tile_rows, config.chunk
  rows = tile_rows * tm
  num_programs_m = pl.cdiv(grid_m, tile_rows)
  num_splits = min(config.num_splits, grid_k)
  x = _common.pad_columns(_common.pad_rows(dense, grid_k * tk), block_n)
  padded_n = x.shape[1]
  offsets = _offsets_with_end(bitmaps, row_offsets)

  def kernel(data_ref, columns_ref, offsets_ref, x_ref, out_ref):
    row_block, col_tile = pl.program_id(0), pl.program_id(1)
    row = jax.lax.broadcasted_iota(jnp.int32, (rows,), 0)
    tile_row = row_block * tile_rows + row // tm
    in_matrix = tile_row < grid_m
    tile_row = jnp.minimum(tile_row, grid_m - 1)
    row_in_tile = row % tm
    slot = jax.lax.broadcasted_iota(jnp.int32, (rows, chunk), 1)

    def spans(tile_col):
      """[rows] first position and number of values of each row's span in tile ``tile_col``."""
      flat = (tile_row * grid_k + tile_col) * tm + row_in_tile
      start = offsets_ref[flat]
      count = jnp.where(in_matrix, offsets_ref[flat + 1] - start, 0)
      return start, count

    def products(tile_col, start, count, acc):
      def one_chunk(c, acc):
        within = c * chunk + slot
        valid = within < count[:, None]
        position = start[:, None] + within
        values = plt.load(data_ref.at[position], mask=valid, other=0).astype(jnp.float32)
        columns = plt.load(columns_ref.at[position], mask=valid, other=0).astype(jnp.int32)
        k = tile_col * tk + columns
        if block_n == 1:
          xs = x_ref[k * padded_n + col_tile].astype(jnp.float32)
          return acc + jnp.sum(values * xs, axis=1, keepdims=True)
        entry = jax.lax.broadcasted_iota(jnp.int32, (rows, chunk, block_n), 2)
        xs = x_ref[(k * padded_n + col_tile * block_n)[:, :, None] + entry].astype(jnp.float32)
        return acc + jnp.sum(values[:, :, None] * xs, axis=1)
      chunks = (jnp.max(count) + chunk - 1) // chunk
      return jax.lax.fori_loop(0, chunks, one_chunk, acc)

    if num_splits == 1:
      first, last = 0, grid_k
    else:
      first, last = _common.split_range(pl.program_id(2), grid_k, num_splits)

    def step(tile_col, carry):
      acc, start, count = carry
      # The next tile's spans are loaded before this tile's values are used.
      next_start, next_count = spans(jnp.minimum(tile_col + 1, last - 1))
      return products(tile_col, start, count, acc), next_start, next_count

    start, count = spans(jnp.minimum(first, grid_k - 1))
    acc, _, _ = jax.lax.fori_loop(first, last, step,
                                  (jnp.zeros((rows, block_n), jnp.float32), start, count))
    out_ref[...] = acc.astype(out_ref.dtype)

  out_shape, out_spec = _common.split_k_output((num_programs_m * rows, padded_n), data.dtype,
                                               num_splits, (rows, block_n))
  whole = pl.no_block_spec
  out = pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(num_programs_m, padded_n // block_n, num_splits),
      in_specs=[whole, whole, whole, whole],
      out_specs=out_spec,
      compiler_params=plt.CompilerParams(num_warps=config.num_warps,
                                         num_stages=config.num_stages),
      interpret=interpret,
      name="jsparse_tiled_gather",
  )(data, value_columns, offsets, x.reshape(-1))
  return _common.sum_splits(out, data.dtype)[:shape[0], :num_n]
