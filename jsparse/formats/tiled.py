"""Tiled bitmap format for unstructured sparse weights computed as dense tiles on tensor cores.

"Load as sparse, compute as dense" (Flash-LLM, SpInfer): the matrix is cut into [tm, tk] tiles;
each tile row stores a bitmap of its nonzeros and the offset of its packed values, so a kernel
reads only the nonzero values plus 1 bit per element (and one offset per tile row), expands each
tile into a dense [tm, tk] tile in registers, and multiplies it on the tensor cores.

Each value also keeps its column within its tile (``value_columns``, one byte). The SpMM kernel
never reads it; SDDMM, ``tocoo`` and the primitives' shape rules (which take the number of stored
values from the first index array) do.

References: Xia et al., "Flash-LLM: Enabling Cost-Effective and Highly-Efficient Large Generative
Model Inference with Unstructured Sparsity", VLDB 2024; Fan et al., "SpInfer: Leveraging
Low-Level Sparsity for Efficient Large Language Model Inference on GPUs", EuroSys 2025.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation
from jsparse.formats.base import SparseMatrix
from jsparse.formats.coo import COO

WORD_BITS = 32
DEFAULT_TILE_SHAPE = (16, 64)
MAX_TILE_COLUMNS = 256  # value_columns is uint8


class Tiled(SparseMatrix):
  """A sparse [M, K] matrix in [tm, tk] tiles, each tile row a bitmap plus packed values.

  Tiles cover ``ceil(M / tm) x ceil(K / tk)`` (the last ones may reach past the matrix; their
  bits there are zero). Values are packed tile by tile (row-major over tiles), row by row within a
  tile, in column order within a row.

  Attributes:
    data: [nse] values, float16 / bfloat16 / float32 / float64; positions at or past the number
      of set bits are padding.
    value_columns: uint8 [nse], column of each value within its tile (0 for padding).
    bitmaps: uint32 [Mt, Kt, tm, tk / 32]; bit b of word w of tile (i, j), row r marks element
      ``(i * tm + r, j * tk + 32 * w + b)``.
    row_offsets: int32 or int64 [Mt, Kt, tm], position in ``data`` of the first value of each
      tile row (an exclusive prefix sum of the bit counts, in storage order).
    shape: (M, K), static; tile_shape: (tm, tk), static, tk a multiple of 32, at most 256.
  """

  format = "tiled"
  index_names = ("value_columns", "bitmaps", "row_offsets")
  _aux_names = ("tile_shape",)

  def __init__(self, arrays: tuple[Any, Any, Any, Any], *, shape: tuple[int, int],
               validate: bool | None = None):
    """Builds a tiled matrix from ``(data, value_columns, bitmaps, row_offsets)``.

    Args:
      arrays: ``(data [nse], value_columns uint8 [nse], bitmaps uint32 [Mt, Kt, tm, tk / 32],
        row_offsets [Mt, Kt, tm])``; the bitmaps give the tile shape.
      shape: ``(M, K)``, with ``Mt = ceil(M / tm)`` and ``Kt = ceil(K / tk)``.
      validate: check the bitmaps and offsets on the host (None: when the arrays are concrete).
    """
    data, value_columns, bitmaps, row_offsets = (jnp.asarray(a) for a in arrays)
    self.shape = validation.check_shape_2d(shape)
    validation.check_value_dtype("data", data)
    if data.ndim != 1:
      raise ValueError(f"data must be 1-D [nse], got shape {data.shape}")
    if bitmaps.dtype != jnp.uint32 or bitmaps.ndim != 4:
      raise TypeError(f"bitmaps must be uint32 [Mt, Kt, tm, tk / 32], got {bitmaps.dtype} "
                      f"{bitmaps.shape}")
    self.tile_shape = _check_tile_shape((bitmaps.shape[2], bitmaps.shape[3] * WORD_BITS))
    validation.check_array_shape("bitmaps", bitmaps, _tile_grid(self.shape, self.tile_shape)
                                 + bitmaps.shape[2:], "[ceil(M / tm), ceil(K / tk), tm, tk / 32]")
    validation.check_index_dtype("row_offsets", row_offsets)
    validation.check_array_shape("row_offsets", row_offsets, bitmaps.shape[:3],
                                 "one per tile row: bitmaps.shape[:3]")
    validation.check_index_dtype("value_columns", value_columns)
    validation.check_array_shape("value_columns", value_columns, data.shape, "one per value")
    self.data, self.bitmaps, self.row_offsets = data, bitmaps, row_offsets
    self.value_columns = value_columns.astype(jnp.uint8)
    if validation.should_validate(validate, data, value_columns, bitmaps, row_offsets):
      self._validate(np.asarray(bitmaps), np.asarray(row_offsets), np.asarray(value_columns))

  def _validate(self, bitmaps: np.ndarray, row_offsets: np.ndarray,
                value_columns: np.ndarray) -> None:
    mask = np.asarray(tile_mask(bitmaps))
    rows, cols = _element_rows_cols(self.shape, self.tile_shape)
    outside = mask & ~((rows < self.shape[0]) & (cols < self.shape[1]))
    if outside.any():
      tile_row, tile_col, row, col = (int(i) for i in np.argwhere(outside)[0])
      raise ValueError(f"bitmaps mark an element outside the {self.shape} matrix: tile "
                       f"({tile_row}, {tile_col}), row {row}, column {col} of the tile")
    counts = mask.sum(axis=-1).reshape(-1)
    expected = np.cumsum(counts) - counts
    actual = row_offsets.reshape(-1)
    if (actual != expected).any():
      flat = int(np.flatnonzero(actual != expected)[0])
      where = tuple(int(i) for i in np.unravel_index(flat, row_offsets.shape))
      raise ValueError(f"row_offsets must be the exclusive prefix sum of the bitmaps' bit counts:"
                       f" row_offsets{list(where)} = {int(actual[flat])}, expected "
                       f"{int(expected[flat])}")
    if counts.sum() > self.nse:
      raise ValueError(f"the bitmaps mark {int(counts.sum())} values but data holds only "
                       f"{self.nse}")
    expected_columns = np.nonzero(mask.reshape(-1, self.tile_shape[1]))[1]
    actual_columns = value_columns[:expected_columns.shape[0]].astype(np.int64)
    if (actual_columns != expected_columns).any():
      position = int(np.flatnonzero(actual_columns != expected_columns)[0])
      raise ValueError(f"value_columns must hold each value's column within its tile, as the "
                       f"bitmaps mark it: value_columns[{position}] = {actual_columns[position]},"
                       f" expected {expected_columns[position]}")

  def _layout_extras(self) -> dict:
    # Primitives see the tile shape as the layout's block shape.
    return {"block_shape": self.tile_shape}

  @property
  def tile_grid(self) -> tuple[int, int]:
    """(Mt, Kt): the number of tile rows and tile columns."""
    return _tile_grid(self.shape, self.tile_shape)

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def fromdense(cls, x: Any, *, tile_shape: Sequence[int] = DEFAULT_TILE_SHAPE,
                nse: int | None = None, index_dtype: Any = None) -> "Tiled":
    """The nonzeros of a dense [M, K] matrix.

    Args:
      x: dense [M, K] array of a floating dtype.
      tile_shape: (tm, tk), tk a multiple of 32; the shape need not be a multiple of it.
      nse: number of stored values; required under ``jit``; extra values are padding (zeros).
      index_dtype: of row_offsets, int32 or int64 (default: int32 unless the size needs int64).
    """
    x = jnp.asarray(x)
    return cls.from_mask(x, x != 0, tile_shape=tile_shape, nse=nse, index_dtype=index_dtype)

  @classmethod
  def from_mask(cls, x: Any, mask: Any, *, tile_shape: Sequence[int] = DEFAULT_TILE_SHAPE,
                nse: int | None = None, index_dtype: Any = None) -> "Tiled":
    """The entries of a dense [M, K] matrix where ``mask`` is True, zeros included (a pruned
    weight keeps its pattern even where a kept value is 0).

    Args:
      x: dense [M, K] array of a floating dtype.
      mask: bool [M, K], the entries to store.
      tile_shape, nse, index_dtype: as in ``fromdense``.
    """
    x = jnp.asarray(x)
    validation.check_dense_matrix("x", x)
    mask = jnp.asarray(mask)
    if mask.shape != x.shape:
      raise ValueError(f"mask must have x's shape {x.shape}, got {mask.shape}")
    if mask.dtype != jnp.bool_:
      raise TypeError(f"mask must be bool, got {mask.dtype}")
    tm, tk = _check_tile_shape(tile_shape)
    grid = _tile_grid(x.shape, (tm, tk))
    pad = ((0, grid[0] * tm - x.shape[0]), (0, grid[1] * tk - x.shape[1]))
    tiles = jnp.pad(x, pad).reshape(grid[0], tm, grid[1], tk).transpose(0, 2, 1, 3)
    mask = jnp.pad(mask, pad).reshape(grid[0], tm, grid[1], tk).transpose(
        0, 2, 1, 3)
    count = None
    if validation.is_concrete(mask):
      count = int(np.count_nonzero(np.asarray(mask)))
      if nse is not None and count > nse:
        raise ValueError(f"nse={nse} is smaller than the number of nonzeros ({count})")
    elif nse is None:
      raise ValueError("nse must be given when x is traced (inside jit): the number of stored "
                       "values sets the shapes of the result")
    nse = count if nse is None else nse
    index_dtype = index_dtype or validation.index_dtype_for(*x.shape, x.size)
    bits = mask.reshape(*grid, tm, tk // WORD_BITS, WORD_BITS).astype(jnp.uint32)
    bitmaps = jnp.sum(bits << jnp.arange(WORD_BITS, dtype=jnp.uint32), axis=-1,
                      dtype=jnp.uint32)
    counts = mask.sum(axis=-1).reshape(-1).astype(index_dtype)
    row_offsets = (jnp.cumsum(counts) - counts).reshape(*grid, tm).astype(index_dtype)
    (positions,) = jnp.nonzero(mask.reshape(-1), size=nse, fill_value=mask.size)
    data = tiles.reshape(-1).at[positions].get(mode="fill", fill_value=0)
    value_columns = jnp.where(positions < mask.size, positions % tk, 0).astype(jnp.uint8)
    return cls((data, value_columns, bitmaps, row_offsets), shape=x.shape, validate=False)

  @classmethod
  def from_sparse(cls, matrix: SparseMatrix, *,
                  tile_shape: Sequence[int] = DEFAULT_TILE_SHAPE) -> "Tiled":
    """From any jsparse matrix (CSR, COO, BSR, NM), through its dense form (host memory M x K)."""
    return cls.fromdense(matrix.todense(), tile_shape=tile_shape)

  # -- conversions -----------------------------------------------------------------------------
  def todense(self) -> jax.Array:
    return expand(self.data, *self.index_arrays, self.shape)

  def tocoo(self) -> COO:
    """Every stored value as a COO entry, in storage order (padding at (M, K)). Jit-able."""
    rows, cols = value_coordinates(*self.index_arrays, self.shape)
    return COO((self.data, rows, cols), shape=self.shape, validate=False)


def tile_mask(bitmaps: Any) -> jax.Array:
  """bool [Mt, Kt, tm, tk] of the set bits of ``bitmaps`` uint32 [Mt, Kt, tm, tk / 32]."""
  bitmaps = jnp.asarray(bitmaps)
  bits = (bitmaps[..., None] >> jnp.arange(WORD_BITS, dtype=jnp.uint32)) & 1
  return bits.reshape(*bitmaps.shape[:3], bitmaps.shape[3] * WORD_BITS).astype(bool)


def value_positions(bitmaps: jax.Array, row_offsets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mask bool, position int32) [Mt, Kt, tm, tk]: where each set element's value is in data."""
  mask = tile_mask(bitmaps)
  ranks = jnp.cumsum(mask, axis=-1, dtype=jnp.int32) - mask
  return mask, row_offsets[..., None].astype(jnp.int32) + ranks


def expand(data: jax.Array, value_columns: jax.Array, bitmaps: jax.Array,
           row_offsets: jax.Array, shape: tuple[int, int]) -> jax.Array:
  """The dense [M, K] matrix (data's dtype) of a tiled matrix's arrays."""
  del value_columns  # The bitmaps say where the values go.
  mask, positions = value_positions(bitmaps, row_offsets)
  grid_m, grid_k, tm, tk = mask.shape
  # One zero appended: a matrix with nse = 0 still gathers from a non-empty array.
  padded = jnp.concatenate([data, jnp.zeros((1,), data.dtype)])
  values = padded.at[jnp.where(mask, positions, data.shape[0])].get(mode="clip")
  tiles = jnp.where(mask, values, jnp.zeros((), data.dtype))
  dense = tiles.transpose(0, 2, 1, 3).reshape(grid_m * tm, grid_k * tk)
  return dense[:shape[0], :shape[1]]


def value_coordinates(value_columns: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array,
                      shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """(rows, cols) int32 [nse] of every stored value; padding values get (M, K)."""
  grid_m, grid_k, tm, words = bitmaps.shape
  nse = value_columns.shape[0]
  offsets = row_offsets.reshape(-1).astype(jnp.int32)
  stored = jnp.sum(jax.lax.population_count(bitmaps), dtype=jnp.int32)
  positions = jnp.arange(nse, dtype=jnp.int32)
  # The tile row of a value: the last one starting at or before it (empty rows share a start).
  tile_rows = jnp.searchsorted(offsets, positions, side="right").astype(jnp.int32) - 1
  tile_m, tile_k, row = (tile_rows // (grid_k * tm), tile_rows // tm % grid_k, tile_rows % tm)
  padding = positions >= stored
  rows = jnp.where(padding, shape[0], tile_m * tm + row)
  cols = jnp.where(padding, shape[1],
                   tile_k * words * WORD_BITS + value_columns.astype(jnp.int32))
  return rows, cols


def _element_rows_cols(shape, tile_shape):
  """Broadcastable row and column [Mt, Kt, tm, tk] of every tile element (NumPy)."""
  (grid_m, grid_k), (tm, tk) = _tile_grid(shape, tile_shape), tile_shape
  rows = np.arange(grid_m)[:, None, None, None] * tm + np.arange(tm)[None, None, :, None]
  cols = np.arange(grid_k)[None, :, None, None] * tk + np.arange(tk)[None, None, None, :]
  return rows, cols


def _tile_grid(shape: tuple[int, int], tile_shape: tuple[int, int]) -> tuple[int, int]:
  return (-(-shape[0] // tile_shape[0]), -(-shape[1] // tile_shape[1]))


def _check_tile_shape(tile_shape: Any) -> tuple[int, int]:
  try:
    tm, tk = (int(t) for t in tile_shape)
  except (TypeError, ValueError):
    raise TypeError(f"tile_shape must be a pair of ints (tm, tk), got {tile_shape!r}") from None
  if tm < 1 or tk < WORD_BITS or tk % WORD_BITS or tk > MAX_TILE_COLUMNS:
    raise ValueError(f"tile_shape must be (tm >= 1, tk a multiple of {WORD_BITS} in "
                     f"[{WORD_BITS}, {MAX_TILE_COLUMNS}]), got {(tm, tk)}")
  return (tm, tk)
