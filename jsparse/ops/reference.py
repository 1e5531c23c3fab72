"""Reference lowerings of the jsparse primitives: pure ``jax.numpy``, any platform.

These define what every kernel must compute. They accumulate in float32 (float64 for float64
values), use ``Precision.HIGHEST`` for dense products, and read index arrays only through
gathers and scatters that drop out-of-range (padding) entries.

Operand conventions (shared with the kernels, see ``jsparse.ops.registry``):
- ``spmm(data, *index_arrays, B)``: A @ B, or A.T @ B with ``transpose=True``.
- ``sddmm(*index_arrays, X, Y)``: stored values ``X[i] . Y[j]`` at A's pattern.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsparse.formats import _structure, tiled
from jsparse.formats.layout import SparseLayout

HIGHEST = jax.lax.Precision.HIGHEST


def accumulation_dtype(dtype) -> jnp.dtype:
  """float32 for half types, else the dtype itself."""
  return jnp.promote_types(dtype, jnp.float32)


def element_coordinates(layout: SparseLayout, index_arrays) -> tuple[jax.Array, jax.Array]:
  """(rows, cols) [nse] of every stored element of a COO, CSR or tiled matrix.

  Padding elements get row M, which every gather and scatter below drops.
  """
  if layout.format == "coo":
    return index_arrays
  if layout.format == "csr":
    col_indices, row_offsets = index_arrays
    return _structure.rows_from_offsets(row_offsets, col_indices.shape[0]), col_indices
  if layout.format == "tiled":
    return tiled.value_coordinates(*index_arrays, layout.shape)
  raise ValueError(f"no element coordinates for format {layout.format!r}")


def _nm_todense(data: jax.Array, indices: jax.Array, layout: SparseLayout) -> jax.Array:
  rows = jnp.arange(layout.shape[0])[:, None]
  return jnp.zeros(layout.shape, data.dtype).at[rows, _structure.nm_columns(indices, *layout.nm)].set(data)


def _todense(data: jax.Array, index_arrays, layout: SparseLayout) -> jax.Array:
  if layout.format == "tiled":
    return tiled.expand(data, *index_arrays, layout.shape)
  return _nm_todense(data, index_arrays[0], layout)  # NM: (indices, packed_indices)


def _gather_rows(matrix: jax.Array, rows: jax.Array) -> jax.Array:
  return jnp.take(matrix, rows, axis=0, mode="fill", fill_value=0)


def spmm(data, *operands, layout: SparseLayout, transpose: bool, **unused_params) -> jax.Array:
  """A @ B [M, N] (or A.T @ B [K, N]) for B [K, N] (or [M, N])."""
  *index_arrays, dense = operands
  acc = accumulation_dtype(data.dtype)
  out_rows = layout.shape[1] if transpose else layout.shape[0]
  if layout.format == "bsr":
    out = _bsr_spmm(data.astype(acc), *index_arrays, dense.astype(acc), layout, transpose)
  elif layout.format in ("nm", "tiled"):
    # Dense expansion: a gather of B per stored value would need nnz * N memory.
    expanded = _todense(data.astype(acc), index_arrays, layout)
    out = jnp.matmul(expanded.T if transpose else expanded, dense.astype(acc), precision=HIGHEST)
  else:
    rows, cols = element_coordinates(layout, index_arrays)
    if transpose:
      rows, cols = cols, rows
    contributions = data.reshape(-1, 1).astype(acc) * _gather_rows(dense, cols).astype(acc)
    out = jax.ops.segment_sum(contributions, rows, num_segments=out_rows)
  return out.astype(data.dtype)


def _bsr_spmm(data, col_indices, row_offsets, dense, layout, transpose):
  bm, bk = layout.block_shape
  block_rows = _structure.rows_from_offsets(row_offsets, col_indices.shape[0])
  num_block_rows, num_block_cols = layout.shape[0] // bm, layout.shape[1] // bk
  if transpose:
    # A.T @ B: block (r, c) sends data[b].T @ B[r-th block of rows] to output block row c.
    gathered = _gather_rows(dense.reshape(num_block_rows, bm, -1), block_rows)
    products = jnp.einsum("bij,bin->bjn", data, gathered, precision=HIGHEST)
    segments = jnp.where(block_rows == num_block_rows, num_block_cols, col_indices)
    out = jax.ops.segment_sum(products, segments, num_segments=num_block_cols)
  else:
    gathered = _gather_rows(dense.reshape(num_block_cols, bk, -1), col_indices)
    products = jnp.einsum("bij,bjn->bin", data, gathered, precision=HIGHEST)
    out = jax.ops.segment_sum(products, block_rows, num_segments=num_block_rows)
  return out.reshape(-1, dense.shape[-1])


def spmv(data, *operands, layout: SparseLayout, transpose: bool, **unused_params) -> jax.Array:
  """A @ x [M] (or A.T @ x [K]) for x [K] (or [M])."""
  *index_arrays, vector = operands
  return spmm(data, *index_arrays, vector[:, None], layout=layout, transpose=transpose)[:, 0]


def sddmm(*operands, layout: SparseLayout, **unused_params) -> jax.Array:
  """Stored values ``X[i] . Y[j]`` for every stored (i, j) of the pattern.

  X is [M, D], Y is [K, D]; the result has the shape of the pattern's ``data`` and dtype of X.
  """
  *index_arrays, x, y = operands
  acc = accumulation_dtype(x.dtype)
  x, y = x.astype(acc), y.astype(acc)
  if layout.format == "bsr":
    col_indices, row_offsets = index_arrays
    bm, bk = layout.block_shape
    block_rows = _structure.rows_from_offsets(row_offsets, col_indices.shape[0])
    x_blocks = _gather_rows(x.reshape(layout.shape[0] // bm, bm, -1), block_rows)
    y_blocks = _gather_rows(y.reshape(layout.shape[1] // bk, bk, -1), col_indices)
    values = jnp.einsum("bid,bjd->bij", x_blocks, y_blocks, precision=HIGHEST)
  elif layout.format == "nm":
    indices, _ = index_arrays  # (indices, packed_indices): the reference reads the bytes
    scores = jnp.matmul(x, y.T, precision=HIGHEST)
    values = jnp.take_along_axis(scores, _structure.nm_columns(indices, *layout.nm), axis=1)
  else:
    rows, cols = element_coordinates(layout, index_arrays)
    values = jnp.sum(_gather_rows(x, rows) * _gather_rows(y, cols), axis=-1)
  return values.astype(operands[-2].dtype)
