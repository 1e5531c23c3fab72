"""COO: coordinate format, one (row, column, value) triple per stored entry."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import _structure, validation
from jsparse.formats.base import SparseMatrix, scipy_dtype


class COO(SparseMatrix):
  """A sparse [M, K] matrix as coordinate triples, in any order, without duplicates.

  Attributes:
    data: [nse] values, float16 / bfloat16 / float32 / float64.
    row_indices: int32 or int64 [nse], in [0, M); padding entries hold M.
    col_indices: int32 or int64 [nse], in [0, K); padding entries hold K.
    shape: (M, K), static.
  """

  format = "coo"
  index_names = ("row_indices", "col_indices")

  def __init__(self, arrays: tuple[Any, Any, Any], *, shape: tuple[int, int],
               validate: bool | None = None):
    """Builds a COO matrix from ``(data, row_indices, col_indices)``.

    Args:
      arrays: ``(data [nse], row_indices [nse], col_indices [nse])``.
      shape: ``(M, K)``.
      validate: check the indices on the host (None: when the arrays are concrete).
    """
    data, row_indices, col_indices = (jnp.asarray(a) for a in arrays)
    self.shape = validation.check_shape_2d(shape)
    validation.check_value_dtype("data", data)
    validation.check_index_dtype("row_indices", row_indices)
    validation.check_index_dtype("col_indices", col_indices)
    if data.ndim != 1:
      raise ValueError(f"data must be 1-D [nse], got shape {data.shape}")
    nse = data.shape[0]
    validation.check_array_shape("row_indices", row_indices, (nse,), "one per stored value")
    validation.check_array_shape("col_indices", col_indices, (nse,), "one per stored value")
    self.data, self.row_indices, self.col_indices = data, row_indices, col_indices
    if validation.should_validate(validate, data, row_indices, col_indices):
      self._validate()

  def _validate(self) -> None:
    num_rows, num_cols = self.shape
    rows, cols = np.asarray(self.row_indices), np.asarray(self.col_indices)
    padding = (rows == num_rows) & (cols == num_cols)
    validation.check_in_range("row_indices", rows, 0, num_rows, allowed=padding)
    validation.check_in_range("col_indices", cols, 0, num_cols, allowed=padding)
    keys = rows[~padding].astype(np.int64) * max(num_cols, 1) + cols[~padding]
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
      key = unique[np.flatnonzero(counts > 1)[0]]
      positions = np.flatnonzero(~padding)[keys == key]
      raise ValueError(f"row_indices/col_indices hold a duplicate entry ({key // max(num_cols, 1)},"
                       f" {key % max(num_cols, 1)}) at positions {positions[0]} and "
                       f"{positions[1]}; COO entries must be unique")

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def fromdense(cls, x: Any, *, nse: int | None = None, index_dtype: Any = None) -> "COO":
    """The nonzero entries of a dense [M, K] matrix, in row-major order.

    Args:
      x: dense [M, K] array of a floating dtype.
      nse: number of stored entries; required under ``jit``; extra entries are padding.
      index_dtype: int32 or int64 (default: int32 unless a size needs int64).
    """
    x = jnp.asarray(x)
    validation.check_dense_matrix("x", x)
    index_dtype = index_dtype or validation.index_dtype_for(*x.shape, x.size)
    rows, cols, nse = _structure.nonzero_coordinates(x != 0, nse, index_dtype)
    data = x.at[rows, cols].get(mode="fill", fill_value=0)
    return cls((data, rows, cols), shape=x.shape, validate=False)

  @classmethod
  def from_scipy(cls, matrix: Any) -> "COO":
    """From any SciPy sparse matrix or array (duplicates are summed)."""
    coo = matrix.tocoo()
    coo.sum_duplicates()
    index_dtype = validation.index_dtype_for(*coo.shape, coo.nnz)
    return cls((coo.data, coo.row.astype(index_dtype), coo.col.astype(index_dtype)),
               shape=coo.shape)

  @classmethod
  def from_bcoo(cls, matrix: Any) -> "COO":
    """From a 2-D ``jax.experimental.sparse.BCOO`` with no batch or dense dimensions."""
    if matrix.n_batch or matrix.n_dense or matrix.ndim != 2:
      raise ValueError(f"matrix must be a 2-D BCOO without batch or dense dimensions, got "
                       f"n_batch={matrix.n_batch}, n_dense={matrix.n_dense}, ndim={matrix.ndim}")
    num_rows, num_cols = matrix.shape
    rows, cols = matrix.indices[:, 0], matrix.indices[:, 1]
    # BCOO pads with any out-of-range index; normalise to (M, K).
    padding = (rows >= num_rows) | (cols >= num_cols)
    rows = jnp.where(padding, num_rows, rows)
    cols = jnp.where(padding, num_cols, cols)
    return cls((matrix.data, rows, cols), shape=matrix.shape)

  # -- conversions -----------------------------------------------------------------------------
  def todense(self) -> jax.Array:
    dense = jnp.zeros(self.shape, self.dtype)
    return dense.at[self.row_indices, self.col_indices].add(self.data, mode="drop")

  def tocoo(self) -> "COO":
    return self

  def tocsr(self):
    """CSR with the same entries (sorted row-major; padding kept at the end). Jit-able."""
    from jsparse.formats.csr import CSR
    order = _structure.sort_row_major(self.row_indices, self.col_indices)
    rows = self.row_indices[order]
    padding = rows == self.shape[0]
    cols = jnp.where(padding, 0, self.col_indices[order])
    data = jnp.where(padding, 0, self.data[order]).astype(self.dtype)
    row_offsets = _structure.row_offsets_from_rows(rows, self.shape[0])
    return CSR((data, cols, row_offsets), shape=self.shape, validate=False)

  def to_scipy(self):
    import scipy.sparse
    rows, cols = np.asarray(self.row_indices), np.asarray(self.col_indices)
    keep = rows < self.shape[0]
    data = np.asarray(self.data.astype(scipy_dtype(self.dtype)))[keep]
    return scipy.sparse.coo_array((data, (rows[keep], cols[keep])), shape=self.shape)

  def to_bcoo(self):
    from jax.experimental import sparse
    indices = jnp.stack([self.row_indices, self.col_indices], axis=1)
    return sparse.BCOO((self.data, indices), shape=self.shape)

  @property
  def T(self) -> "COO":
    """The transpose [K, M], by swapping the index arrays (no copy of the values)."""
    return COO((self.data, self.col_indices, self.row_indices), shape=self.shape[::-1],
               validate=False)

