"""``jax.ffi`` wrappers of the C++ CSR kernels in ``csrc/csr_spmv.cc``.

The functions here know arrays and a layout, nothing of jsparse's types; ``jsparse/_cpu``
registers them with ``jsparse.ops.registry`` when the compiled extension is present.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
  from jsparse.formats.layout import SparseLayout

# FFI target of the CSR SpMV handler for each value dtype (data, x and y share it).
SPMV_TARGETS: dict[np.dtype, str] = {
    np.dtype(np.float32): "jsparse_csr_spmv_f32",
    np.dtype(np.float64): "jsparse_csr_spmv_f64",
    np.dtype(jnp.bfloat16): "jsparse_csr_spmv_bf16",
}
INDEX_DTYPE = np.dtype(np.int32)


def csr_spmv_ffi(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array,
                 x: jax.Array, *, layout: SparseLayout, transpose: bool,
                 impl: str = "ffi") -> jax.Array:
  """Computes ``y = A @ x`` for a CSR matrix ``A`` with the C++ kernel.

  Entries at positions ``>= row_offsets[M]`` are padding and ignored. Invalid structure
  (``row_offsets[0] != 0``, decreasing ``row_offsets``, ``row_offsets[M] > nse``, a column
  index outside ``[0, K)``) makes the computation fail at run time with an error naming the
  argument and the first offending position.

  Args:
    data: ``[nse]`` float32, float64 or bfloat16, the stored values.
    col_indices: ``[nse]`` int32, the column of each stored value.
    row_offsets: ``[M + 1]`` int32, row ``i`` holds positions
      ``row_offsets[i]:row_offsets[i + 1]``.
    x: ``[K]``, same dtype as ``data``.
    layout: the matrix's static structure; ``layout.shape == (M, K)``.
    transpose: must be False (``A.T @ x`` is not implemented by this kernel).
    impl: the implementation the registry chose; unused here.

  Returns:
    ``y``: ``[M]``, same dtype as ``data`` (bfloat16 is accumulated in float32).
  """
  del impl  # The registry has already picked this kernel.
  if transpose:
    raise NotImplementedError("the CPU FFI CSR spmv kernel does not implement transpose=True")
  num_rows, _ = layout.shape
  target_name = SPMV_TARGETS[np.dtype(data.dtype)]
  # The primitive above batches by itself, so this is only reached unbatched; "sequential"
  # stays correct should a vmap reach it anyway (the handler takes rank-1 buffers only).
  call = jax.ffi.ffi_call(target_name, jax.ShapeDtypeStruct((num_rows,), data.dtype),
                          vmap_method="sequential")
  return call(data, col_indices, row_offsets, x)


def csr_spmv_supports(avals: Sequence[Any], params: dict) -> bool | str:
  """Says whether ``csr_spmv_ffi`` serves a call: True, or the reason it does not.

  Args:
    avals: abstract values (``.shape``, ``.dtype``) of ``data, col_indices, row_offsets, x``.
    params: the primitive's parameters (``layout``, ``transpose``, ``impl``).
  """
  data, col_indices, row_offsets, x = avals
  if params.get("transpose", False):
    return "transpose=True is not implemented"
  value_dtype = np.dtype(data.dtype)
  if value_dtype not in SPMV_TARGETS:
    supported = ", ".join(str(dtype) for dtype in SPMV_TARGETS)
    return f"dtype {value_dtype} not supported (supported: {supported})"
  if np.dtype(x.dtype) != value_dtype:
    return f"x dtype {np.dtype(x.dtype)} differs from data dtype {value_dtype}"
  for name, aval in (("col_indices", col_indices), ("row_offsets", row_offsets)):
    if np.dtype(aval.dtype) != INDEX_DTYPE:
      return f"index dtype {np.dtype(aval.dtype)} not supported ({name}; only int32 is)"
  for name, aval in zip(("data", "col_indices", "row_offsets", "x"), avals):
    if len(aval.shape) != 1:
      return f"{name} must be 1-D, got shape {tuple(aval.shape)}"
  return True
