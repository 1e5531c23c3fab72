"""``jax.ffi`` wrappers of the C++ SDDMM kernels (``csrc/{csr,coo,bsr,nm}.cc``).

Arrays and a layout only, as in ``jsparse._cpu.spmm``; invalid structure fails the call at run
time with an error naming the argument and the first offending position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import jax

from jsparse._cpu import _support

if TYPE_CHECKING:
  from jsparse.formats.layout import SparseLayout

TARGETS = {fmt: f"jsparse_{fmt}_sddmm" for fmt in ("coo", "csr", "bsr", "nm")}


def sddmm_ffi(*operands: jax.Array, layout: SparseLayout, impl: str = "ffi") -> jax.Array:
  """The values ``X[i] . Y[j]`` at every stored (i, j) of a pattern, with the C++ kernel.

  Args:
    *operands: the pattern's index arrays in its format's order (see ``spmm_ffi``), then
      X [M, D] and Y [K, D] of one dtype, float32, float64 or bfloat16.
    layout: the pattern's static structure, shape (M, K).
    impl: the implementation the registry chose; unused here.

  Returns:
    The pattern's data shape ([nse], [nse, bm, bk] for BSR, [M, K / m * n] for NM), of X's dtype
    (bfloat16 accumulated in float32); padding entries hold 0.
  """
  del impl  # The registry has already picked this kernel.
  *index_arrays, x, y = operands
  index_arrays = _support.ffi_index_arrays(layout.format, index_arrays)
  if layout.format == "bsr":
    shape = (index_arrays[0].shape[0], *layout.block_shape)
  else:
    shape = index_arrays[0].shape
  attributes: dict[str, Any] = {}
  if layout.format == "nm":
    attributes["n"], attributes["m"] = layout.nm
  call = jax.ffi.ffi_call(TARGETS[layout.format], jax.ShapeDtypeStruct(shape, x.dtype),
                          vmap_method="sequential")
  return call(*index_arrays, x, y, **attributes)


def sddmm_supports(avals: Sequence[Any], params: dict) -> bool | str:
  """Whether ``sddmm_ffi`` serves a call: True, or the reason it does not.

  Args:
    avals: abstract values of ``*index_arrays, X, Y``.
    params: the primitive's parameters (``layout``, ``impl``).
  """
  *index_avals, x, y = avals
  return _support.check_operands(params["layout"].format, index_avals, {"X": x, "Y": y})
