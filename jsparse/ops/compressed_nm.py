"""``jsparse.spmm`` on a ``CompressedNM``: the sparse tensor cores (cuSPARSELt at prefill,
jsparse's mma.sp kernel at decoding) or its NM matrix.

cuSPARSELt's 2:4 product wins at prefill and loses at decoding to the Pallas N:M kernels
(``jsparse.cusparselt.ROUTE_MIN_N`` says where the two cross); the mma.sp kernel beats both up
to ``jsparse._gpu.sparse_mma.ROUTE_MAX_N`` columns. A ``CompressedNM`` that holds its ``NM``
matrix and ``MmaNM`` copy too is routed per call by the number of columns of B.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jsparse.formats.compressed_nm import CompressedNM
from jsparse.ops import _primitive, mma_nm

# "cusparselt" forces cuSPARSELt, "mma" the mma.sp kernel on the held MmaNM; the others run on
# the held NM matrix.
IMPLS = ("auto", "cusparselt", "mma", "reference", "ffi", "pallas")


def route(A: CompressedNM, num_columns: int, dtype: Any, *, transpose_a: bool,
          impl: str) -> str:
  """``"cusparselt"``, ``"mma"`` or ``"matrix"``: where ``A @ B`` with B [K, num_columns] of
  ``dtype`` runs.

  Under ``impl="auto"``: the mma.sp kernel when A holds its ``MmaNM`` copy, B has at most
  ``sparse_mma.ROUTE_MAX_N`` columns and the kernel can run the call
  (``jsparse.ops.mma_nm.route``); else cuSPARSELt when the call is not transposed, B has A's
  dtype, the default backend is a GPU on which the cuSPARSELt library loads, and B has at
  least ``ROUTE_MIN_N`` columns and A at least ``ROUTE_MIN_WEIGHT`` entries (or A holds no
  matrix to fall back to).

  Raises:
    ValueError: ``impl`` is unknown, or the call needs the matrix and A holds none, or
      ``impl="cusparselt"`` / ``"mma"`` for a call that path cannot run (naming why).
  """
  from jsparse._gpu import cusparselt, sparse_mma  # GPU modules import the op registry

  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS} for a CompressedNM, got {impl!r}")
  if impl == "mma":
    if A.mma is None:
      raise ValueError("impl='mma' needs A's MmaNM copy: build A with "
                       "jsparse.cusparselt.from_nm(matrix, decoding=True)")
    return mma_nm.route(A.mma, num_columns, dtype, transpose_a=transpose_a, impl="mma")
  if (impl == "auto" and A.mma is not None and num_columns <= sparse_mma.ROUTE_MAX_N
      and mma_nm.route(A.mma, num_columns, dtype, transpose_a=transpose_a,
                       impl="auto") == "mma"):
    return "mma"
  reasons = []
  if transpose_a:
    reasons.append("transpose_a (cuSPARSELt's product here is A @ B only)")
  if jnp.dtype(dtype) != jnp.dtype(A.dtype):
    reasons.append(f"B's dtype {jnp.dtype(dtype)} differs from A's {jnp.dtype(A.dtype)}")
  if not reasons and impl in ("auto", "cusparselt"):
    verdict = cusparselt.available()
    if verdict is not True:
      reasons.append(f"cuSPARSELt is not available: {verdict}")
  if impl == "cusparselt":
    if reasons:
      raise ValueError(f"impl='cusparselt' cannot run this product: {'; '.join(reasons)}")
    return "cusparselt"
  large = A.shape[0] * A.shape[1] >= cusparselt.ROUTE_MIN_WEIGHT
  if impl == "auto" and not reasons and (
      A.matrix is None or (num_columns >= cusparselt.ROUTE_MIN_N and large)):
    return "cusparselt"
  if A.matrix is None:
    why = "; ".join(reasons) or f"impl={impl!r} runs on the NM matrix"
    raise ValueError(f"A is a CompressedNM without its NM matrix and the product cannot run on "
                     f"the sparse tensor cores ({why}): build it with "
                     "jsparse.cusparselt.from_nm(matrix) to keep the matrix")
  return "matrix"


def spmm(A: CompressedNM, B: Any, *, transpose_a: bool, impl: str) -> jax.Array:
  """``A @ B`` (``A.T @ B``) for ``jsparse.spmm``: B [K, N] ([M, N]) -> [M, N] ([K, N])."""
  from jsparse._gpu import cusparselt
  from jsparse.ops.spmm import spmm as spmm_on_matrix

  B = _primitive.check_dense("B", B, 2, "[K, N]")
  path = route(A, B.shape[1], B.dtype, transpose_a=transpose_a, impl=impl)
  if path == "cusparselt":
    return cusparselt.matmul(A, B)
  if path == "mma":
    return mma_nm.spmm(A.mma, B, transpose_a=False, impl="mma")
  return spmm_on_matrix(A.matrix, B, transpose_a=transpose_a, impl=impl)


def matmul_transposed(x: Any, A: CompressedNM, *, impl: str) -> jax.Array:
  """``x @ A.T`` for x [..., K]: [..., M] (a linear layer's product)."""
  from jsparse._gpu import cusparselt
  from jsparse.ops.spmm import matmul_transposed as matmul_transposed_on_matrix

  x = _primitive.check_layer_input(x, A.shape[1])
  rows = x.reshape(-1, x.shape[-1])
  path = route(A, rows.shape[0], x.dtype, transpose_a=False, impl=impl)
  if path == "cusparselt":
    return cusparselt.matmul_transposed(rows, A).reshape(*x.shape[:-1], A.shape[0])
  if path == "mma":
    return mma_nm.matmul_transposed(x, A.mma, impl="mma")
  return matmul_transposed_on_matrix(x, A.matrix, impl=impl)
