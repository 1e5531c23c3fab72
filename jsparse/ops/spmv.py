"""SpMV: sparse matrix @ dense vector, the memory-bound N = 1 case of SpMM."""

from __future__ import annotations

from typing import Any

import jax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jsparse.formats.base import SparseMatrix
from jsparse.ops import _primitive, reference, registry
from jsparse.ops.sddmm import sddmm_p
from jsparse.ops.spmm import spmm_p

spmv_p = Primitive("jsparse_spmv")


def spmv(A: SparseMatrix, x: Any, *, transpose_a: bool = False, impl: str = "auto") -> jax.Array:
  """Sparse matrix-vector product ``A @ x`` (``A.T @ x`` with ``transpose_a``).

  Args:
    A: sparse [M, K] matrix (COO, CSR, BSR or NM).
    x: dense [K] vector ([M] with ``transpose_a``).
    transpose_a: multiply by the transpose of A.
    impl: ``"auto"``, ``"reference"``, ``"ffi"`` or ``"pallas"``.

  Returns:
    dense [M] ([K] with ``transpose_a``), of the promoted dtype of A and x.
  """
  A = _primitive.check_sparse("A", A)
  x = _primitive.check_dense("x", x, 1, "[K]")
  contracted = A.shape[0] if transpose_a else A.shape[1]
  _primitive.check_length("x", x.shape[0], contracted,
                          f"it must equal A.shape[{0 if transpose_a else 1}]")
  dtype = _primitive.common_value_dtype(A=A, x=x)
  return spmv_p.bind(A.data.astype(dtype), *A.index_arrays, x.astype(dtype), layout=A.layout,
                     transpose=bool(transpose_a), impl=registry.check_impl(impl))


def _spmv_abstract_eval(data, *operands, layout, transpose, impl):
  return jax.core.ShapedArray((layout.shape[1] if transpose else layout.shape[0],), data.dtype)


def _spmv_batching_rule(batched_args, batch_dims, *, layout, transpose, impl):
  *sparse_dims, vector_dim = batch_dims
  if all(dim is None for dim in sparse_dims):
    # A batch of vectors is a matrix: one SpMM.
    *sparse_args, vectors = batched_args
    columns = vectors if vector_dim == 1 else vectors.T
    return spmm_p.bind(*sparse_args, columns, layout=layout, transpose=transpose, impl=impl), 1
  return _primitive.batch_by_loop(spmv_p, batched_args, batch_dims, layout=layout,
                                  transpose=transpose, impl=impl)


def _spmv_jvp(primals, tangents, *, layout, transpose, impl):
  data, *operands = primals
  index_arrays, (vector,) = _primitive.split_index_arrays(operands, layout)
  data_dot, vector_dot = tangents[0], tangents[-1]
  params = dict(layout=layout, transpose=transpose, impl=impl)
  out = spmv_p.bind(*primals, **params)
  terms = []
  if type(data_dot) is not ad.Zero:
    terms.append(spmv_p.bind(data_dot, *index_arrays, vector, **params))
  if type(vector_dot) is not ad.Zero:
    terms.append(spmv_p.bind(data, *index_arrays, vector_dot, **params))
  return out, _primitive.sum_tangents(terms, out)


def _spmv_transpose(cotangent, data, *operands, layout, transpose, impl):
  index_arrays, (vector,) = _primitive.split_index_arrays(operands, layout)
  if ad.is_undefined_primal(data) == ad.is_undefined_primal(vector):
    raise ValueError("spmv is transposed in exactly one of data and x")
  unknowns = [None] * len(index_arrays)
  if type(cotangent) is ad.Zero:
    if ad.is_undefined_primal(data):
      return [_primitive.zero_cotangent(data), *unknowns, None]
    return [None, *unknowns, _primitive.zero_cotangent(vector)]
  if ad.is_undefined_primal(data):
    # d<ct, A @ x>/d data[e] = ct[row_e] * x[col_e]: a rank-one SDDMM.
    rows, cols = (vector, cotangent) if transpose else (cotangent, vector)
    data_ct = sddmm_p.bind(*index_arrays, rows[:, None], cols[:, None], layout=layout, impl=impl)
    return [data_ct.reshape(data.aval.shape), *unknowns, None]
  vector_ct = spmv_p.bind(data, *index_arrays, cotangent, layout=layout, transpose=not transpose,
                          impl=impl)
  return [None, *unknowns, vector_ct]


spmv_p.def_abstract_eval(_spmv_abstract_eval)
_primitive.define_eager_impl(spmv_p)
_primitive.register_lowerings(spmv_p, "spmv", reference.spmv)
batching.primitive_batchers[spmv_p] = _spmv_batching_rule
ad.primitive_jvps[spmv_p] = _spmv_jvp
ad.primitive_transposes[spmv_p] = _spmv_transpose
