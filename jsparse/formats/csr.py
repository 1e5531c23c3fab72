"""CSR: compressed sparse rows, the layout of SciPy's ``csr_array`` and of cuSPARSE."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import _structure, validation
from jsparse.formats.base import SparseMatrix, scipy_dtype
from jsparse.formats.coo import COO
from jsparse.formats.layout import LaunchHint


class CSR(SparseMatrix):
  """A sparse [M, K] matrix in compressed sparse row format.

  Attributes:
    data: [nse] values, float16 / bfloat16 / float32 / float64.
    col_indices: int32 or int64 [nse], in [0, K), strictly increasing within each row.
    row_offsets: int32 or int64 [M + 1]; row i holds positions ``row_offsets[i]:row_offsets[i+1]``.
      Positions at or past ``row_offsets[M]`` are padding.
    shape: (M, K), static.
    natural_row_order: static; True when the row offsets were concrete at construction and the
      GPU kernels may launch the rows in order (``_structure.rows_in_launch_order``: the rows
      already follow the kernels' schedule, longest power-of-two length bucket first, or are
      balanced within 4x): the kernels then skip computing the schedule (~12 us a call at
      M = 4096 on an H100). A ``LaunchHint`` in the pytree structure: it survives ``jit``, yet
      matrices that differ only in it have equal structures (they stack and ``vmap``).
  """

  format = "csr"
  index_names = ("col_indices", "row_offsets")
  _aux_names = ("natural_row_order",)

  def __init__(self, arrays: tuple[Any, Any, Any], *, shape: tuple[int, int],
               validate: bool | None = None):
    """Builds a CSR matrix from ``(data, col_indices, row_offsets)``.

    Args:
      arrays: ``(data [nse], col_indices [nse], row_offsets [M + 1])``.
      shape: ``(M, K)``.
      validate: check the indices on the host (None: when the arrays are concrete).
    """
    data, col_indices, row_offsets = (jnp.asarray(a) for a in arrays)
    self.shape = validation.check_shape_2d(shape)
    validation.check_value_dtype("data", data)
    if data.ndim != 1:
      raise ValueError(f"data must be 1-D [nse], got shape {data.shape}")
    validation.check_compressed_arrays(row_offsets, col_indices, num_rows=self.shape[0],
                                       nse=data.shape[0])
    self.data, self.col_indices, self.row_offsets = data, col_indices, row_offsets
    # One host copy of the offsets serves the validation and the launch hint.
    host_offsets = np.asarray(row_offsets) if validation.is_concrete(row_offsets) else None
    if validation.should_validate(validate, data, col_indices, row_offsets):
      validation.check_compressed_values(host_offsets, col_indices, num_cols=self.shape[1])
    self.natural_row_order = LaunchHint(host_offsets is not None
                                        and _structure.rows_in_launch_order(host_offsets))

  def _layout_extras(self) -> dict:
    return {"natural_row_order": self.natural_row_order}

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def fromdense(cls, x: Any, *, nse: int | None = None, index_dtype: Any = None) -> "CSR":
    """The nonzero entries of a dense [M, K] matrix.

    Args:
      x: dense [M, K] array of a floating dtype.
      nse: number of stored entries; required under ``jit``; extra entries are padding.
      index_dtype: int32 or int64 (default: int32 unless a size needs int64).
    """
    return COO.fromdense(x, nse=nse, index_dtype=index_dtype).tocsr()

  @classmethod
  def from_scipy(cls, matrix: Any) -> "CSR":
    """From any SciPy sparse matrix or array (duplicates summed, indices sorted)."""
    csr = matrix.tocsr(copy=True)
    csr.sum_duplicates()
    csr.sort_indices()
    index_dtype = validation.index_dtype_for(*csr.shape, csr.nnz)
    return cls((csr.data, csr.indices.astype(index_dtype), csr.indptr.astype(index_dtype)),
               shape=csr.shape)

  @classmethod
  def from_bcsr(cls, matrix: Any) -> "CSR":
    """From a 2-D ``jax.experimental.sparse.BCSR`` with no batch or dense dimensions."""
    if matrix.n_batch or matrix.n_dense or matrix.ndim != 2:
      raise ValueError(f"matrix must be a 2-D BCSR without batch or dense dimensions, got "
                       f"n_batch={matrix.n_batch}, n_dense={matrix.n_dense}, ndim={matrix.ndim}")
    # BCSR pads with out-of-range column indices; jsparse pads with column 0.
    padding = jnp.arange(matrix.nse) >= matrix.indptr[-1]
    col_indices = jnp.where(padding, 0, matrix.indices).astype(matrix.indices.dtype)
    return cls((matrix.data, col_indices, matrix.indptr), shape=matrix.shape)

  # -- conversions -----------------------------------------------------------------------------
  def entry_rows(self) -> jax.Array:
    """Row index [nse] of every stored position (M for padding)."""
    return _structure.rows_from_offsets(self.row_offsets, self.nse)

  def todense(self) -> jax.Array:
    dense = jnp.zeros(self.shape, self.dtype)
    return dense.at[self.entry_rows(), self.col_indices].add(self.data, mode="drop")

  def tocoo(self) -> COO:
    rows = self.entry_rows()
    cols = jnp.where(rows == self.shape[0], self.shape[1], self.col_indices)
    return COO((self.data, rows, cols.astype(rows.dtype)), shape=self.shape, validate=False)

  def tocsr(self) -> "CSR":
    return self

  def to_scipy(self):
    import scipy.sparse
    end = int(self.row_offsets[-1])
    data = np.asarray(self.data.astype(scipy_dtype(self.dtype)))[:end]
    return scipy.sparse.csr_array(
        (data, np.asarray(self.col_indices)[:end], np.asarray(self.row_offsets)),
        shape=self.shape)

  def to_bcsr(self):
    from jax.experimental import sparse
    return sparse.BCSR((self.data, self.col_indices, self.row_offsets), shape=self.shape)
