"""SDDMM: sampled dense-dense matrix product, ``(X @ Y.T)`` at the stored entries of a pattern."""

from __future__ import annotations

from typing import Any

import jax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jsparse.formats.base import SparseMatrix
from jsparse.ops import _primitive, reference, registry

sddmm_p = Primitive("jsparse_sddmm")


def sddmm(pattern: SparseMatrix, X: Any, Y: Any, *, impl: str = "auto") -> SparseMatrix:
  """Sampled dense-dense product: a sparse matrix with ``pattern``'s structure and values
  ``X[i] . Y[j]`` at every stored (i, j).

  Args:
    pattern: sparse [M, N] matrix (COO, CSR, BSR or NM); only its structure is read.
    X: dense [M, D].
    Y: dense [N, D].
    impl: ``"auto"``, ``"reference"``, ``"ffi"`` or ``"pallas"``.

  Returns:
    A matrix of ``pattern``'s type and structure, values of the promoted dtype of X and Y
    (accumulated in float32 for half types). Padding entries hold 0.
  """
  pattern = _primitive.check_sparse("pattern", pattern)
  X = _primitive.check_dense("X", X, 2, "[M, D]")
  Y = _primitive.check_dense("Y", Y, 2, "[N, D]")
  _primitive.check_length("X.shape[0]", X.shape[0], pattern.shape[0],
                          "it must equal pattern.shape[0]")
  _primitive.check_length("Y.shape[0]", Y.shape[0], pattern.shape[1],
                          "it must equal pattern.shape[1]")
  _primitive.check_length("Y.shape[1]", Y.shape[1], X.shape[1], "it must equal X.shape[1]")
  dtype = _primitive.common_value_dtype(X=X, Y=Y)
  values = sddmm_p.bind(*pattern.index_arrays, X.astype(dtype), Y.astype(dtype),
                        layout=pattern.layout, impl=registry.check_impl(impl))
  return pattern.with_data(values)


def _sddmm_abstract_eval(*operands, layout, impl):
  index_arrays, (x, _) = _primitive.split_index_arrays(operands, layout)
  if layout.format == "bsr":
    shape = (index_arrays[0].shape[0], *layout.block_shape)
  else:
    shape = index_arrays[0].shape
  return jax.core.ShapedArray(shape, x.dtype)


def _sddmm_jvp(primals, tangents, *, layout, impl):
  index_arrays, (x, y) = _primitive.split_index_arrays(primals, layout)
  x_dot, y_dot = tangents[-2:]
  out = sddmm_p.bind(*primals, layout=layout, impl=impl)
  terms = []
  if type(x_dot) is not ad.Zero:
    terms.append(sddmm_p.bind(*index_arrays, x_dot, y, layout=layout, impl=impl))
  if type(y_dot) is not ad.Zero:
    terms.append(sddmm_p.bind(*index_arrays, x, y_dot, layout=layout, impl=impl))
  return out, _primitive.sum_tangents(terms, out)


def _sddmm_transpose(cotangent, *operands, layout, impl):
  from jsparse.ops.spmm import spmm_p  # spmm's transpose needs sddmm: import at call time.
  index_arrays, (x, y) = _primitive.split_index_arrays(operands, layout)
  if ad.is_undefined_primal(x) == ad.is_undefined_primal(y):
    raise ValueError("sddmm is transposed in exactly one of X and Y")
  unknowns = [None] * len(index_arrays)
  if type(cotangent) is ad.Zero:
    if ad.is_undefined_primal(x):
      return [*unknowns, _primitive.zero_cotangent(x), None]
    return [*unknowns, None, _primitive.zero_cotangent(y)]
  # With C the sparse matrix of cotangent values: dX = C @ Y and dY = C.T @ X, both SpMM.
  if ad.is_undefined_primal(x):
    x_ct = spmm_p.bind(cotangent, *index_arrays, y, layout=layout, transpose=False, impl=impl)
    return [*unknowns, x_ct, None]
  y_ct = spmm_p.bind(cotangent, *index_arrays, x, layout=layout, transpose=True, impl=impl)
  return [*unknowns, None, y_ct]


sddmm_p.def_abstract_eval(_sddmm_abstract_eval)
_primitive.define_eager_impl(sddmm_p)
_primitive.register_lowerings(sddmm_p, "sddmm", reference.sddmm)
batching.primitive_batchers[sddmm_p] = lambda args, dims, **params: _primitive.batch_by_loop(
    sddmm_p, args, dims, **params)
ad.primitive_jvps[sddmm_p] = _sddmm_jvp
ad.primitive_transposes[sddmm_p] = _sddmm_transpose
