"""Row scheduling shared by the CSR kernels: rows ordered by nonzero count (a row swizzle).

Launching the longest rows first and neighbouring programs on rows of similar length balances the
work across the GPU's SMs (Gale et al., "Sparse GPU Kernels for Deep Learning", SC20, section 5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rows_by_length(row_offsets: jax.Array) -> jax.Array:
  """The row indices ordered by decreasing nonzero count (stable among equal counts).

  Args:
    row_offsets: ``[M + 1]`` int32, monotone CSR row offsets.

  Returns:
    ``[M]`` int32, a permutation of ``0 .. M - 1``; jit-able (one sort of ``M`` keys).
  """
  lengths = jnp.diff(row_offsets)
  return jnp.argsort(-lengths, stable=True).astype(jnp.int32)


def check_csr_operands(data_or_none, col_indices: jax.Array, row_offsets: jax.Array,
                       num_rows: int) -> None:
  """Raises ValueError/TypeError naming the CSR argument whose shape or dtype is wrong."""
  if row_offsets.ndim != 1 or row_offsets.shape[0] != num_rows + 1:
    raise ValueError(f"row_offsets must have shape [M + 1] = ({num_rows + 1},), got "
                     f"{tuple(row_offsets.shape)}")
  if col_indices.ndim != 1:
    raise ValueError(f"col_indices must be 1-D [nse], got shape {tuple(col_indices.shape)}")
  for name, array in (("col_indices", col_indices), ("row_offsets", row_offsets)):
    if array.dtype != jnp.int32:
      raise TypeError(f"{name} must be int32, got {array.dtype}")
  if data_or_none is not None and data_or_none.shape != col_indices.shape:
    raise ValueError(f"data must have the shape of col_indices {tuple(col_indices.shape)}, got "
                     f"{tuple(data_or_none.shape)}")


def check_value_dtype(name: str, array: jax.Array) -> None:
  """Raises TypeError unless ``array`` is float16, bfloat16 or float32 (what the kernels store)."""
  if array.dtype not in (jnp.float16, jnp.bfloat16, jnp.float32):
    raise TypeError(f"{name} must be float16, bfloat16 or float32, got {array.dtype}")


def entry_rows(row_offsets: jax.Array, nse: int) -> jax.Array:
  """The row of each of the ``nse`` stored positions, ``M`` for padding (``>= row_offsets[M]``).

  Args:
    row_offsets: ``[M + 1]`` int32 CSR row offsets.
    nse: the number of stored positions (``col_indices.shape[0]``).

  Returns:
    ``[nse]`` int32, in ``[0, M]``.
  """
  positions = jnp.arange(nse, dtype=row_offsets.dtype)
  rows = jnp.searchsorted(row_offsets, positions, side="right").astype(jnp.int32) - 1
  return jnp.where(positions < row_offsets[-1], rows, row_offsets.shape[0] - 1)
