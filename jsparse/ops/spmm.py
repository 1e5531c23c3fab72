"""SpMM: sparse @ dense, ``A @ B`` (or ``A.T @ B``) for every sparse format."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jsparse.formats.base import SparseMatrix
from jsparse.formats.compressed_nm import CompressedNM
from jsparse.formats.mma_nm import MmaNM
from jsparse.formats.layout import LaunchHint
from jsparse.ops import _primitive, compressed_nm, mma_nm, reference, registry
from jsparse.ops.sddmm import sddmm_p

spmm_p = Primitive("jsparse_spmm")


def spmm(A: SparseMatrix, B: Any, *, transpose_a: bool = False, impl: str = "auto") -> jax.Array:
  """Sparse-dense matrix product ``A @ B`` (``A.T @ B`` with ``transpose_a``).

  Args:
    A: sparse [M, K] matrix (COO, CSR, BSR, NM or Tiled), or a ``CompressedNM`` or ``MmaNM``
      (2:4 on the sparse tensor cores through cuSPARSELt or jsparse's decoding kernel:
      ``jsparse.ops.compressed_nm``, ``jsparse.ops.mma_nm``).
    B: dense [K, N] array ([M, N] with ``transpose_a``).
    transpose_a: multiply by the transpose of A (how ``x @ A`` and the gradient are computed).
    impl: ``"auto"`` (fastest registered backend), ``"reference"``, ``"ffi"`` or ``"pallas"``
      (``"cusparselt"`` for a ``CompressedNM``; ``"auto"``, ``"mma"`` or ``"reference"`` for an
      ``MmaNM``).

  Returns:
    dense [M, N] ([K, N] with ``transpose_a``), of the promoted dtype of A and B. Half-precision
    inputs are accumulated in float32.
  """
  if isinstance(A, CompressedNM):
    return compressed_nm.spmm(A, B, transpose_a=bool(transpose_a), impl=impl)
  if isinstance(A, MmaNM):
    return mma_nm.spmm(A, B, transpose_a=bool(transpose_a), impl=impl)
  A = _primitive.check_sparse("A", A)
  B = _primitive.check_dense("B", B, 2, "[K, N]")
  contracted = A.shape[0] if transpose_a else A.shape[1]
  _primitive.check_length("B.shape[0]", B.shape[0], contracted,
                          f"it must equal A.shape[{0 if transpose_a else 1}]")
  dtype = _primitive.common_value_dtype(A=A, B=B)
  return spmm_p.bind(A.data.astype(dtype), *A.index_arrays, B.astype(dtype), layout=A.layout,
                     transpose=bool(transpose_a), impl=registry.check_impl(impl))


def matmul_transposed(x: Any, A: SparseMatrix, *, impl: str = "auto") -> jax.Array:
  """``x @ A.T`` for a dense x [..., K] and a sparse A [M, K] (a linear layer's ``x @ W.T``).

  Computed as ``spmm(A, x.T).T`` over x's rows flattened, with the layout's
  ``operand_transposed`` hint set: a GPU kernel that needs B row-major would pay for both
  transposes, and the path choice counts them (``jsparse._gpu.csr``).

  Returns:
    dense [..., M] of the promoted dtype of A and x.
  """
  if isinstance(A, CompressedNM):
    return compressed_nm.matmul_transposed(x, A, impl=impl)
  if isinstance(A, MmaNM):
    return mma_nm.matmul_transposed(x, A, impl=impl)
  A = _primitive.check_sparse("A", A)
  x = jnp.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"x must have at least one dimension [..., K], got shape {x.shape}")
  _primitive.check_length("x.shape[-1]", x.shape[-1], A.shape[1], "it must equal A.shape[1]")
  rows = x.reshape(-1, x.shape[-1])
  dtype = _primitive.common_value_dtype(A=A, x=rows)
  layout = dataclasses.replace(A.layout, operand_transposed=LaunchHint(True))
  product = spmm_p.bind(A.data.astype(dtype), *A.index_arrays, rows.T.astype(dtype),
                        layout=layout, transpose=False, impl=registry.check_impl(impl))
  return product.T.reshape(*x.shape[:-1], A.shape[0])


def _spmm_abstract_eval(data, *operands, layout, transpose, impl):
  _, (dense,) = _primitive.split_index_arrays(operands, layout)
  rows = layout.shape[1] if transpose else layout.shape[0]
  return jax.core.ShapedArray((rows, dense.shape[1]), data.dtype)


def _spmm_batching_rule(batched_args, batch_dims, *, layout, transpose, impl):
  *sparse_dims, dense_dim = batch_dims
  if all(dim is None for dim in sparse_dims):
    # Only B is batched: fold the batch into B's columns, one call.
    *sparse_args, dense = batched_args
    dense = jnp.moveaxis(dense, dense_dim, 1)
    batch, contracted, columns = dense.shape[1], dense.shape[0], dense.shape[2]
    out = spmm_p.bind(*sparse_args, dense.reshape(contracted, batch * columns), layout=layout,
                      transpose=transpose, impl=impl)
    return out.reshape(out.shape[0], batch, columns), 1
  return _primitive.batch_by_loop(spmm_p, batched_args, batch_dims, layout=layout,
                                  transpose=transpose, impl=impl)


def _spmm_jvp(primals, tangents, *, layout, transpose, impl):
  data, *operands = primals
  index_arrays, (dense,) = _primitive.split_index_arrays(operands, layout)
  data_dot, *operand_dots = tangents
  dense_dot = operand_dots[-1]
  params = dict(layout=layout, transpose=transpose, impl=impl)
  out = spmm_p.bind(*primals, **params)
  terms = []
  if type(data_dot) is not ad.Zero:
    terms.append(spmm_p.bind(data_dot, *index_arrays, dense, **params))
  if type(dense_dot) is not ad.Zero:
    terms.append(spmm_p.bind(data, *index_arrays, dense_dot, **params))
  return out, _primitive.sum_tangents(terms, out)


def _spmm_transpose(cotangent, data, *operands, layout, transpose, impl):
  index_arrays, (dense,) = _primitive.split_index_arrays(operands, layout)
  if ad.is_undefined_primal(data) == ad.is_undefined_primal(dense):
    raise ValueError("spmm is transposed in exactly one of data and B")
  unknowns = [None] * len(index_arrays)
  if type(cotangent) is ad.Zero:
    if ad.is_undefined_primal(data):
      return [_primitive.zero_cotangent(data), *unknowns, None]
    return [None, *unknowns, _primitive.zero_cotangent(dense)]
  if ad.is_undefined_primal(data):
    # d<ct, A @ B>/d data[e] = ct[row_e] . B[col_e]: SDDMM with the pattern of A.
    x, y = (dense, cotangent) if transpose else (cotangent, dense)
    data_ct = sddmm_p.bind(*index_arrays, x, y, layout=layout, impl=impl)
    return [data_ct.reshape(data.aval.shape), *unknowns, None]
  dense_ct = spmm_p.bind(data, *index_arrays, cotangent, layout=layout, transpose=not transpose,
                         impl=impl)
  return [None, *unknowns, dense_ct]


spmm_p.def_abstract_eval(_spmm_abstract_eval)
_primitive.define_eager_impl(spmm_p)
_primitive.register_lowerings(spmm_p, "spmm", reference.spmm)
batching.primitive_batchers[spmm_p] = _spmm_batching_rule
ad.primitive_jvps[spmm_p] = _spmm_jvp
ad.primitive_transposes[spmm_p] = _spmm_transpose
