"""``jsparse.spmm`` on a ``CompressedNM``: the sparse tensor cores (cuSPARSELt) or its NM matrix.

cuSPARSELt's 2:4 product wins at prefill and loses at decoding to the Pallas N:M kernels
(``jsparse.cusparselt.ROUTE_MIN_N`` says where the two cross), so a ``CompressedNM`` that holds
its ``NM`` matrix too is routed per call by the number of columns of B.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jsparse.formats.compressed_nm import CompressedNM

# "cusparselt" forces the sparse tensor cores; the others run on the held NM matrix.
IMPLS = ("auto", "cusparselt", "reference", "ffi", "pallas")


def route(A: CompressedNM, num_columns: int, dtype: Any, *, transpose_a: bool,
          impl: str) -> str:
  """``"cusparselt"`` or ``"matrix"``: where ``A @ B`` with B [K, num_columns] of ``dtype`` runs.

  Under ``impl="auto"`` the sparse tensor cores take the call when it is not transposed, B has
  A's dtype, the default backend is a GPU on which the cuSPARSELt library loads, and B has at
  least ``ROUTE_MIN_N`` columns and A at least ``ROUTE_MIN_WEIGHT`` entries (or A holds no
  matrix to fall back to).

  Raises:
    ValueError: ``impl`` is unknown, or the call needs the matrix and A holds none, or
      ``impl="cusparselt"`` for a call cuSPARSELt cannot run (naming why).
  """
  from jsparse._gpu import cusparselt  # the GPU module imports the op registry

  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS} for a CompressedNM, got {impl!r}")
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

  B = jnp.asarray(B)
  if B.ndim != 2:
    raise ValueError(f"B must be 2-D [K, N], got shape {B.shape}")
  if route(A, B.shape[1], B.dtype, transpose_a=transpose_a, impl=impl) == "cusparselt":
    return cusparselt.matmul(A, B)
  return spmm_on_matrix(A.matrix, B, transpose_a=transpose_a, impl=impl)


def matmul_transposed(x: Any, A: CompressedNM, *, impl: str) -> jax.Array:
  """``x @ A.T`` for x [..., K]: [..., M] (a linear layer's product)."""
  from jsparse._gpu import cusparselt
  from jsparse.ops.spmm import matmul_transposed as matmul_transposed_on_matrix

  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[-1] != A.shape[1]:
    raise ValueError(f"x must be [..., K] with K = A.shape[1] = {A.shape[1]}, got shape "
                     f"{x.shape}")
  rows = x.reshape(-1, x.shape[-1])
  if route(A, rows.shape[0], x.dtype, transpose_a=False, impl=impl) == "cusparselt":
    return cusparselt.matmul_transposed(rows, A).reshape(*x.shape[:-1], A.shape[0])
  return matmul_transposed_on_matrix(x, A.matrix, impl=impl)
