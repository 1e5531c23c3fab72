"""Which calls the C++ kernels serve: the dtype and shape rules shared by every wrapper.

A ``supports(avals, params)`` predicate of ``jsparse.ops.registry`` returns True or the reason a
kernel cannot serve a call; under ``impl="auto"`` that call then falls back to the reference.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

# Value dtypes of every kernel (bfloat16 accumulates in float32). float16 is not among them.
VALUE_DTYPES = tuple(np.dtype(d) for d in (np.float32, np.float64, jnp.bfloat16))
# Index dtypes of the COO, CSR and BSR kernels (one dtype for both index arrays).
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
# N:M in-group positions.
NM_INDEX_DTYPE = np.dtype(np.uint8)
# Tiled bitmaps.
BITMAP_DTYPE = np.dtype(np.uint32)


def ffi_index_arrays(format: str, index_arrays: Sequence[Any]) -> tuple[Any, ...]:
  """The index arrays the C++ kernels take: N:M's ``(indices, packed_indices)`` -> ``(indices,)``
  (the packed copy is for the GPU kernels); Tiled's ``(value_columns, bitmaps, row_offsets)``
  -> ``(bitmaps, row_offsets)`` (the SpMM finds columns in the bitmaps); other formats'
  unchanged."""
  if format == "nm":
    return tuple(index_arrays[:1])
  if format == "tiled":
    return tuple(index_arrays[1:])
  return tuple(index_arrays)


def check_operands(format: str, index_avals: Sequence[Any],
                   value_avals: dict[str, Any]) -> bool | str:
  """True when the kernels take these dtypes, else the reason they do not.

  Args:
    format: ``"coo"``, ``"csr"``, ``"bsr"``, ``"nm"`` or ``"tiled"``.
    index_avals: the index arrays' abstract values, in operand order.
    value_avals: ``{name: abstract value}`` of the value operands, which must share one dtype.
  """
  names = list(value_avals)
  value_dtype = np.dtype(value_avals[names[0]].dtype)
  if value_dtype not in VALUE_DTYPES:
    supported = ", ".join(map(str, VALUE_DTYPES))
    return f"dtype {value_dtype} not supported (supported: {supported})"
  for name in names[1:]:
    if np.dtype(value_avals[name].dtype) != value_dtype:
      return (f"{name} dtype {np.dtype(value_avals[name].dtype)} differs from {names[0]} dtype "
              f"{value_dtype}")
  if format == "tiled":
    bitmaps, row_offsets = ffi_index_arrays(format, index_avals)
    if np.dtype(bitmaps.dtype) != BITMAP_DTYPE:
      return f"bitmaps must be uint32, got {np.dtype(bitmaps.dtype)}"
    if np.dtype(row_offsets.dtype) not in INDEX_DTYPES:
      return f"row_offsets dtype {np.dtype(row_offsets.dtype)} not supported (int32, int64)"
    return True
  index_dtypes = {np.dtype(aval.dtype) for aval in ffi_index_arrays(format, index_avals)}
  if format == "nm":
    if index_dtypes != {NM_INDEX_DTYPE}:
      return f"N:M indices must be uint8, got {sorted(map(str, index_dtypes))}"
    return True
  if len(index_dtypes) != 1:
    return f"index arrays of different dtypes {sorted(map(str, index_dtypes))} not supported"
  (index_dtype,) = index_dtypes
  if index_dtype not in INDEX_DTYPES:
    return f"index dtype {index_dtype} not supported (supported: int32, int64)"
  return True
