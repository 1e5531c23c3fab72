"""Index arithmetic shared by the formats: coordinates from masks, row offsets and back.

Padding convention (the same in every format and kernel): a matrix built with an explicit ``nse``
larger than its number of entries stores the surplus at the end. In compressed formats (CSR, BSR)
padding is every position at or past ``row_offsets[-1]``; in COO it is an entry whose row index
equals the number of rows and whose column index equals the number of columns (as in
``jax.experimental.sparse.BCOO``). Padding contributes nothing to any product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation


def nonzero_coordinates(mask: jax.Array, nse: int | None, index_dtype) -> tuple[jax.Array, ...]:
  """Row-major coordinates of the set entries of a 2-D boolean ``mask``.

  Args:
    mask: bool [R, C].
    nse: number of coordinates to return; None counts them on the host (needs a concrete mask).
    index_dtype: integer dtype of the result.

  Returns:
    ``(rows, cols, nse)``: int [nse] each, padded with ``(R, C)`` past the last set entry.
  """
  num_rows, num_cols = mask.shape
  if validation.is_concrete(mask):
    count = int(np.count_nonzero(np.asarray(mask)))
    if nse is None:
      nse = count
    elif count > nse:
      raise ValueError(f"nse={nse} is smaller than the number of entries to store ({count})")
  elif nse is None:
    raise ValueError("nse must be given when the dense matrix is traced (inside jit): the number "
                     "of stored entries sets the shapes of the result")
  rows, cols = jnp.nonzero(mask, size=nse, fill_value=(num_rows, num_cols))
  return rows.astype(index_dtype), cols.astype(index_dtype), nse


def row_offsets_from_rows(sorted_rows: jax.Array, num_rows: int) -> jax.Array:
  """Row offsets [R + 1] of sorted row indices [nse] (padding rows equal R and sort last)."""
  boundaries = jnp.arange(num_rows + 1, dtype=sorted_rows.dtype)
  return jnp.searchsorted(sorted_rows, boundaries, side="left").astype(sorted_rows.dtype)


def rows_from_offsets(row_offsets: jax.Array, nse: int) -> jax.Array:
  """Row index [nse] of each stored position; positions past ``row_offsets[-1]`` get R."""
  positions = jnp.arange(nse, dtype=row_offsets.dtype)
  return (jnp.searchsorted(row_offsets, positions, side="right") - 1).astype(row_offsets.dtype)


def sort_row_major(rows: jax.Array, cols: jax.Array) -> jax.Array:
  """The permutation [nse] that orders coordinates by row, then column (stable)."""
  by_col = jnp.argsort(cols, stable=True)
  return by_col[jnp.argsort(rows[by_col], stable=True)]


def nm_columns(indices: jax.Array, n: int, m: int) -> jax.Array:
  """Column [M, K / m * n] of every stored value of an N:M matrix from its in-group positions."""
  group_starts = (jnp.arange(indices.shape[1], dtype=jnp.int32) // n) * m
  return group_starts[None, :] + indices.astype(jnp.int32)


def rows_in_launch_order(row_offsets) -> bool:
  """True when the GPU kernels may launch the rows in their natural order instead of computing
  their schedule (``pallas_kernels._rows.rows_by_length``: longest power-of-two length bucket
  first): the rows already follow it (no row's bucket above the previous row's), or every
  non-empty row lies in two adjacent buckets (lengths within 4x, as in a uniform random matrix),
  where the schedule cannot balance the SMs' work any better. Host-side, on concrete ``[M + 1]``
  row offsets."""
  lengths = np.maximum(np.diff(np.asarray(row_offsets, np.int64)), 0)
  bits = np.zeros(lengths.shape, np.int64)
  nonzero = lengths > 0
  bits[nonzero] = np.floor(np.log2(lengths[nonzero])).astype(np.int64) + 1
  if np.all(np.diff(bits) <= 0):
    return True
  return bool(bits[nonzero].max() - bits[nonzero].min() <= 1)
