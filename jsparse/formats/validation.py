"""Host-side checks of sparse-matrix structure, with errors that name the argument.

Checks run when a matrix is built from concrete (host or device) arrays. Under ``jit`` the arrays
are tracers and cannot be inspected; the constructors then skip the value checks (shape and dtype
checks always run). ``validate=False`` skips the value checks for concrete data too, for hot paths
that build many matrices from trusted structure.
"""

from __future__ import annotations

from typing import Any

import operator

import jax
import jax.numpy as jnp
import numpy as np

VALUE_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32),
                jnp.dtype(jnp.float64))
INT32_MAX = np.iinfo(np.int32).max


def is_concrete(*arrays: Any) -> bool:
  """True when no array is a tracer, so values can be read on the host."""
  return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def should_validate(validate: bool | None, *arrays: Any) -> bool:
  """Resolves a constructor's ``validate`` argument (None: check when the data is concrete)."""
  concrete = is_concrete(*arrays)
  if validate is None:
    return concrete
  if validate and not concrete:
    raise ValueError("validate=True needs concrete arrays, but some are traced (inside jit or "
                     "vmap); build the matrix outside the transformation or pass validate=False")
  return bool(validate)


def check_shape_2d(shape: Any) -> tuple[int, int]:
  try:
    shape = tuple(operator.index(d) for d in shape)
  except TypeError:
    raise TypeError(f"shape must be a pair of ints (M, K), got {shape!r}") from None
  if len(shape) != 2 or min(shape) < 0:
    raise ValueError(f"shape must be a pair of non-negative ints (M, K), got {shape!r}")
  return shape


def check_value_dtype(name: str, array: Any) -> None:
  dtype = jnp.dtype(array.dtype)
  if dtype not in VALUE_DTYPES:
    raise TypeError(f"{name} must have a floating dtype (float16, bfloat16, float32 or float64), "
                    f"got {dtype}")


def check_dense_matrix(name: str, x: Any) -> None:
  if x.ndim != 2:
    raise ValueError(f"{name} must be a 2-D [M, K] array, got shape {x.shape}")
  check_value_dtype(name, x)


def check_index_dtype(name: str, array: Any) -> None:
  if not jnp.issubdtype(array.dtype, jnp.integer):
    raise TypeError(f"{name} must have an integer dtype, got {array.dtype}")


def check_array_shape(name: str, array: Any, expected: tuple[int, ...], what: str) -> None:
  if tuple(array.shape) != tuple(expected):
    raise ValueError(f"{name} must have shape {tuple(expected)} ({what}), got {tuple(array.shape)}")


def index_dtype_for(*sizes: int) -> np.dtype:
  """int32 when every size fits in int32, else int64 (which needs ``jax_enable_x64``)."""
  if max(sizes, default=0) <= INT32_MAX:
    return np.dtype(np.int32)
  if not jax.config.jax_enable_x64:
    raise ValueError(f"a dimension or nnz ({max(sizes)}) does not fit in int32 indices; enable "
                     "64-bit indices with jax.config.update('jax_enable_x64', True)")
  return np.dtype(np.int64)


def check_in_range(name: str, values: np.ndarray, low: int, high: int,
                   allowed: np.ndarray | None = None) -> None:
  """Raises if some ``values[p]`` is outside ``[low, high)`` (positions where allowed is set pass)."""
  bad = (values < low) | (values >= high)
  if allowed is not None:
    bad &= ~allowed
  if bad.any():
    position = int(np.flatnonzero(bad.reshape(-1))[0])
    index = np.unravel_index(position, values.shape)
    where = index[0] if len(index) == 1 else tuple(int(i) for i in index)
    raise ValueError(f"{name} out of range: {name}[{where}] = {int(values.reshape(-1)[position])}, "
                     f"expected {low} <= index < {high}")


def check_row_offsets(name: str, row_offsets: np.ndarray, nse: int) -> None:
  """Row offsets start at 0, never decrease and end at most at nse (entries past the end pad)."""
  if row_offsets[0] != 0:
    raise ValueError(f"{name}[0] must be 0, got {int(row_offsets[0])}")
  steps = np.diff(row_offsets)
  if (steps < 0).any():
    row = int(np.flatnonzero(steps < 0)[0])
    raise ValueError(f"{name} must be non-decreasing, but {name}[{row + 1}] = "
                     f"{int(row_offsets[row + 1])} < {name}[{row}] = {int(row_offsets[row])}")
  if row_offsets[-1] > nse:
    raise ValueError(f"{name}[-1] = {int(row_offsets[-1])} exceeds the number of stored entries "
                     f"({nse})")


def check_sorted_within_rows(name: str, col_indices: np.ndarray, row_offsets: np.ndarray) -> None:
  """Column indices strictly increase within each row: sorted, no duplicates."""
  end = int(row_offsets[-1])
  if end < 2:
    return
  cols = col_indices[:end]
  same_row = np.ones(end - 1, dtype=bool)
  row_starts = row_offsets[1:-1]
  row_starts = row_starts[(row_starts > 0) & (row_starts < end)]
  same_row[row_starts - 1] = False
  bad = same_row & (cols[1:] <= cols[:-1])
  if bad.any():
    position = int(np.flatnonzero(bad)[0]) + 1
    row = int(np.searchsorted(row_offsets, position, side="right") - 1)
    kind = "duplicate" if cols[position] == cols[position - 1] else "unsorted"
    raise ValueError(f"{name} must be sorted and unique within each row: {kind} entry at "
                     f"position {position} (row {row}): {int(cols[position - 1])} then "
                     f"{int(cols[position])}")


def check_compressed_arrays(row_offsets: Any, col_indices: Any, *, num_rows: int,
                            nse: int) -> None:
  """Static checks of a compressed (CSR / BSR) index pair: dtypes and lengths."""
  check_index_dtype("col_indices", col_indices)
  check_index_dtype("row_offsets", row_offsets)
  check_array_shape("col_indices", col_indices, (nse,), "one per stored entry")
  check_array_shape("row_offsets", row_offsets, (num_rows + 1,), "number of rows + 1")


def check_compressed_values(row_offsets: Any, col_indices: Any, *, num_cols: int) -> None:
  """Value checks of a compressed index pair: offsets, ranges, sorted unique columns per row."""
  offsets, cols = np.asarray(row_offsets), np.asarray(col_indices)
  check_row_offsets("row_offsets", offsets, cols.shape[0])
  # Padding positions must also index in range: kernels may read them.
  check_in_range("col_indices", cols, 0, max(num_cols, 1))
  check_sorted_within_rows("col_indices", cols, offsets)
