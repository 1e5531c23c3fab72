"""``jsparse.spmm`` on an ``MmaNM``: jsparse's mma.sp decoding kernel, or A expanded to dense.

The kernel (``jsparse._gpu.sparse_mma``) runs a call on a CUDA GPU whose library loads, when it
is not transposed, B has A's dtype and 1..``MAX_N`` columns. Every other call (the CPU, float32
B, more columns, ``transpose_a``, ``impl="reference"``) expands A to dense and multiplies in
float32: correct anywhere, and differentiable, but without the kernel's speed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jsparse.formats.mma_nm import MmaNM
from jsparse.ops import _primitive

# "mma" forces the kernel; "reference" the dense expansion.
IMPLS = ("auto", "mma", "reference")


def route(A: MmaNM, num_columns: int, dtype: Any, *, transpose_a: bool, impl: str) -> str:
  """``"mma"`` or ``"reference"``: where ``A @ B`` with B [K, num_columns] of ``dtype`` runs.

  Raises ValueError for an unknown ``impl``, or ``impl="mma"`` for a call the kernel cannot
  run (naming why)."""
  from jsparse._gpu import sparse_mma  # the GPU module builds a CUDA library

  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS} for an MmaNM, got {impl!r}")
  if impl == "reference":
    return "reference"
  reasons = []
  if transpose_a:
    reasons.append("transpose_a (the kernel computes A @ B only)")
  if jnp.dtype(dtype) != A.dtype:
    reasons.append(f"B's dtype {jnp.dtype(dtype)} differs from A's {A.dtype}")
  if not 1 <= num_columns <= sparse_mma.MAX_N:
    reasons.append(f"B has {num_columns} columns (the kernel takes 1..{sparse_mma.MAX_N})")
  if not reasons:
    verdict = sparse_mma.available()
    if verdict is not True:
      reasons.append(f"the kernel is not available: {verdict}")
  if impl == "mma" and reasons:
    raise ValueError(f"impl='mma' cannot run this product: {'; '.join(reasons)}")
  return "reference" if reasons else "mma"


def _reference(A: MmaNM, B: jax.Array, transpose_a: bool) -> jax.Array:
  dtype = jnp.promote_types(A.dtype, B.dtype)
  dense = A.todense()
  product = jnp.dot(dense.T if transpose_a else dense, B, precision=jax.lax.Precision.HIGHEST,
                    preferred_element_type=jnp.promote_types(dtype, jnp.float32))
  return product.astype(dtype)


def spmm(A: MmaNM, B: Any, *, transpose_a: bool, impl: str) -> jax.Array:
  """``A @ B`` (``A.T @ B``) for ``jsparse.spmm``: B [K, N] ([M, N]) -> [M, N] ([K, N])."""
  from jsparse._gpu import sparse_mma

  B = _primitive.check_dense("B", B, 2, "[K, N]")
  contracted = A.shape[0] if transpose_a else A.shape[1]
  if B.shape[0] != contracted:
    raise ValueError(f"B.shape[0] = {B.shape[0]} must equal A.shape"
                     f"[{0 if transpose_a else 1}] = {contracted}")
  if route(A, B.shape[1], B.dtype, transpose_a=transpose_a, impl=impl) == "mma":
    return sparse_mma.staged_product(
        B, lambda operand, tokens_major: sparse_mma.matmul(A, operand, tokens_major=tokens_major))
  return _reference(A, B, transpose_a)


def matmul_transposed(x: Any, A: MmaNM, *, impl: str) -> jax.Array:
  """``x @ A.T`` for x [..., K]: [..., M] (a linear layer's product; tokens-major, no
  transposes around the kernel)."""
  from jsparse._gpu import sparse_mma

  x = _primitive.check_layer_input(x, A.shape[1])
  rows = x.reshape(-1, x.shape[-1])
  if route(A, rows.shape[0], x.dtype, transpose_a=False, impl=impl) == "mma":
    out = sparse_mma.matmul(A, rows, tokens_major=True)
  else:
    out = _reference(A, rows.T, False).T
  return out.reshape(*x.shape[:-1], A.shape[0])
