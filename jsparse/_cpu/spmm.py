"""``jax.ffi`` wrappers of the C++ SpMM kernels (``csrc/{csr,coo,bsr,nm,tiled}.cc``), SpMV included.

The functions here know arrays and a layout, nothing of jsparse's types; ``jsparse/_cpu``
registers them with ``jsparse.ops.registry`` when the compiled extension is present. Invalid
structure reaching a kernel (a row offset out of order, an index out of range) fails the call at
run time with an error naming the argument and the first offending position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import jax

from jsparse._cpu import _support

if TYPE_CHECKING:
  from jsparse.formats.layout import SparseLayout

TARGETS = {fmt: f"jsparse_{fmt}_spmm" for fmt in ("coo", "csr", "bsr", "nm", "tiled")}


def spmm_ffi(data: jax.Array, *operands: jax.Array, layout: SparseLayout, transpose: bool,
             impl: str = "ffi") -> jax.Array:
  """``A @ B`` (``A.T @ B`` with ``transpose``) with the C++ kernel of ``layout.format``.

  Args:
    data: A's stored values: [nse] (COO, CSR, Tiled), [nse, bm, bk] (BSR) or [M, K / m * n]
      (NM); float32, float64 or bfloat16.
    *operands: A's index arrays in the format's order (COO: row_indices, col_indices; CSR, BSR:
      col_indices, row_offsets; int32 or int64. NM: indices, uint8, and packed_indices, which
      these kernels drop. Tiled: value_columns, which they drop, bitmaps uint32 and
      row_offsets int32 or int64), then B: [K, N] ([M, N] with ``transpose``, not for Tiled),
      of data's dtype.
    layout: A's static structure, shape (M, K).
    transpose: compute ``A.T @ B``.
    impl: the implementation the registry chose; unused here.

  Returns:
    [M, N] ([K, N] with ``transpose``), of data's dtype (bfloat16 accumulated in float32).
  """
  del impl  # The registry has already picked this kernel.
  *index_arrays, dense = operands
  index_arrays = _support.ffi_index_arrays(layout.format, index_arrays)
  rows = layout.shape[1] if transpose else layout.shape[0]
  attributes: dict[str, Any] = {"transpose": bool(transpose)}
  if layout.format == "nm":
    attributes["n"], attributes["m"] = layout.nm
  # The primitives batch by themselves, so only unbatched calls get here; "sequential" stays
  # correct should a vmap reach the call anyway (the handlers take unbatched buffers).
  call = jax.ffi.ffi_call(TARGETS[layout.format],
                          jax.ShapeDtypeStruct((rows, dense.shape[1]), data.dtype),
                          vmap_method="sequential")
  return call(data, *index_arrays, dense, **attributes)


def spmm_supports(avals: Sequence[Any], params: dict) -> bool | str:
  """Whether ``spmm_ffi`` serves a call: True, or the reason it does not.

  Args:
    avals: abstract values of ``data, *index_arrays, B``.
    params: the primitive's parameters (``layout``, ``transpose``, ``impl``).
  """
  data, *index_avals, dense = avals
  return _transpose_refusal(params, "B") or _support.check_operands(
      params["layout"].format, index_avals, {"data": data, "B": dense})


def spmv_ffi(data: jax.Array, *operands: jax.Array, layout: SparseLayout, transpose: bool,
             impl: str = "ffi") -> jax.Array:
  """``A @ x`` (``A.T @ x`` with ``transpose``): SpMM with one column.

  Args as ``spmm_ffi`` with x [K] ([M] with ``transpose``) in place of B.

  Returns:
    [M] ([K] with ``transpose``), of data's dtype.
  """
  *index_arrays, vector = operands
  return spmm_ffi(data, *index_arrays, vector[:, None], layout=layout, transpose=transpose,
                  impl=impl)[:, 0]


def spmv_supports(avals: Sequence[Any], params: dict) -> bool | str:
  """Whether ``spmv_ffi`` serves a call: True, or the reason it does not."""
  data, *index_avals, vector = avals
  return _transpose_refusal(params, "x") or _support.check_operands(
      params["layout"].format, index_avals, {"data": data, "x": vector})


def _transpose_refusal(params: dict, operand: str) -> str | None:
  """Why a transposed product has no kernel (the tiled format computes A @ B only), or None."""
  if params["layout"].format == "tiled" and params["transpose"]:
    return f"the tiled kernel computes A @ {operand} only (A.T @ {operand} runs the reference)"
  return None
