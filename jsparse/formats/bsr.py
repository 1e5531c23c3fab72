"""BSR: block sparse rows, CSR over dense [bm, bk] blocks (tensor-core friendly)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import _structure, validation
from jsparse.formats.base import SparseMatrix, scipy_dtype
from jsparse.formats.coo import COO


class BSR(SparseMatrix):
  """A sparse [M, K] matrix of dense [bm, bk] blocks in compressed-row order.

  Attributes:
    data: [nse, bm, bk] block values, float16 / bfloat16 / float32 / float64.
    col_indices: int32 or int64 [nse], block column of each block, in [0, K / bk), strictly
      increasing within each block row.
    row_offsets: int32 or int64 [M / bm + 1]; blocks past ``row_offsets[-1]`` are padding.
    shape: (M, K), static; block_shape: (bm, bk), static, dividing the shape.
  """

  format = "bsr"
  index_names = ("col_indices", "row_offsets")
  _aux_names = ("block_shape",)

  def __init__(self, arrays: tuple[Any, Any, Any], *, shape: tuple[int, int],
               validate: bool | None = None):
    """Builds a BSR matrix from ``(data, col_indices, row_offsets)``; the blocks give bm, bk.

    Args:
      arrays: ``(data [nse, bm, bk], col_indices [nse], row_offsets [M / bm + 1])``.
      shape: ``(M, K)``, multiples of ``(bm, bk)``.
      validate: check the indices on the host (None: when the arrays are concrete).
    """
    data, col_indices, row_offsets = (jnp.asarray(a) for a in arrays)
    self.shape = validation.check_shape_2d(shape)
    validation.check_value_dtype("data", data)
    if data.ndim != 3:
      raise ValueError(f"data must be 3-D [nse, bm, bk], got shape {data.shape}")
    self.block_shape = _check_block_shape(data.shape[1:], self.shape)
    block_rows = self.shape[0] // self.block_shape[0]
    validation.check_compressed_arrays(row_offsets, col_indices, num_rows=block_rows,
                                       nse=data.shape[0])
    self.data, self.col_indices, self.row_offsets = data, col_indices, row_offsets
    if validation.should_validate(validate, data, col_indices, row_offsets):
      validation.check_compressed_values(row_offsets, col_indices,
                                         num_cols=self.shape[1] // self.block_shape[1])

  def _layout_extras(self) -> dict:
    return {"block_shape": self.block_shape}

  @property
  def block_grid(self) -> tuple[int, int]:
    """(M / bm, K / bk): the number of block rows and block columns."""
    return (self.shape[0] // self.block_shape[0], self.shape[1] // self.block_shape[1])

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def fromdense(cls, x: Any, *, block_shape: Sequence[int], nse: int | None = None,
                index_dtype: Any = None) -> "BSR":
    """The blocks of a dense [M, K] matrix that hold a nonzero.

    Args:
      x: dense [M, K] array of a floating dtype.
      block_shape: (bm, bk), dividing (M, K).
      nse: number of stored blocks; required under ``jit``; extra blocks are padding.
      index_dtype: int32 or int64 (default: int32 unless a size needs int64).
    """
    x = jnp.asarray(x)
    validation.check_dense_matrix("x", x)
    bm, bk = _check_block_shape(block_shape, x.shape)
    block_rows, block_cols = x.shape[0] // bm, x.shape[1] // bk
    blocks = x.reshape(block_rows, bm, block_cols, bk).transpose(0, 2, 1, 3)
    index_dtype = index_dtype or validation.index_dtype_for(*x.shape, x.size)
    rows, cols, nse = _structure.nonzero_coordinates((blocks != 0).any(axis=(2, 3)), nse,
                                                     index_dtype)
    data = blocks.at[rows, cols].get(mode="fill", fill_value=0)
    row_offsets = _structure.row_offsets_from_rows(rows, block_rows)
    cols = jnp.where(rows == block_rows, 0, cols).astype(index_dtype)
    return cls((data, cols, row_offsets), shape=x.shape, validate=False)

  @classmethod
  def from_scipy(cls, matrix: Any, *, block_shape: Sequence[int] | None = None) -> "BSR":
    """From a SciPy sparse matrix; ``block_shape`` defaults to that of a SciPy BSR input."""
    if block_shape is None and getattr(matrix, "format", None) != "bsr":
      raise ValueError("block_shape is required unless matrix is a SciPy BSR matrix")
    bsr = matrix.tobsr(blocksize=None if block_shape is None else tuple(block_shape), copy=True)
    bsr.sum_duplicates()
    bsr.sort_indices()
    index_dtype = validation.index_dtype_for(*bsr.shape, bsr.nnz)
    return cls((bsr.data, bsr.indices.astype(index_dtype), bsr.indptr.astype(index_dtype)),
               shape=bsr.shape)

  # -- conversions -----------------------------------------------------------------------------
  def block_row_indices(self) -> jax.Array:
    """Block row [nse] of every stored block (M / bm for padding)."""
    return _structure.rows_from_offsets(self.row_offsets, self.nse)

  def todense(self) -> jax.Array:
    block_rows, block_cols = self.block_grid
    bm, bk = self.block_shape
    blocks = jnp.zeros((block_rows, block_cols, bm, bk), self.dtype)
    blocks = blocks.at[self.block_row_indices(), self.col_indices].add(self.data, mode="drop")
    return blocks.transpose(0, 2, 1, 3).reshape(self.shape)

  def tocoo(self) -> COO:
    """Every value of every stored block as a COO entry (explicit zeros kept). Jit-able."""
    bm, bk = self.block_shape
    block_rows = self.block_row_indices()
    padding = (block_rows == self.block_grid[0])[:, None, None]
    rows = block_rows[:, None, None] * bm + jnp.arange(bm, dtype=block_rows.dtype)[None, :, None]
    cols = self.col_indices[:, None, None] * bk + jnp.arange(bk, dtype=block_rows.dtype)[None,
                                                                                          None, :]
    rows = jnp.where(padding, self.shape[0], rows)
    cols = jnp.where(padding, self.shape[1], cols)
    size = self.nse * bm * bk
    rows, cols = (jnp.broadcast_to(a, self.data.shape).reshape(size).astype(block_rows.dtype)
                  for a in (rows, cols))
    return COO((self.data.reshape(size), rows, cols), shape=self.shape, validate=False)

  def tobsr(self, block_shape: Sequence[int] | None = None, nse: int | None = None) -> "BSR":
    same_blocks = block_shape is None or tuple(block_shape) == self.block_shape
    if same_blocks and (nse is None or nse == self.nse):
      return self
    return super().tobsr(self.block_shape if block_shape is None else block_shape, nse)

  def to_scipy(self):
    import scipy.sparse
    end = int(self.row_offsets[-1])
    data = np.asarray(self.data.astype(scipy_dtype(self.dtype)))[:end]
    return scipy.sparse.bsr_array(
        (data, np.asarray(self.col_indices)[:end], np.asarray(self.row_offsets)),
        shape=self.shape, blocksize=self.block_shape)


def _check_block_shape(block_shape: Any, shape: tuple[int, int]) -> tuple[int, int]:
  try:
    bm, bk = (int(b) for b in block_shape)
  except (TypeError, ValueError):
    raise TypeError(f"block_shape must be a pair of ints (bm, bk), got {block_shape!r}") from None
  if bm < 1 or bk < 1:
    raise ValueError(f"block_shape must be positive, got {(bm, bk)}")
  if shape[0] % bm or shape[1] % bk:
    raise ValueError(f"block_shape {(bm, bk)} must divide the shape {tuple(shape)}")
  return (bm, bk)
