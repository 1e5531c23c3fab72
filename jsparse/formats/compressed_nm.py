"""CompressedNM: a 2:4 matrix held in cuSPARSELt's compressed layout for the sparse tensor cores."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jsparse.formats import validation
from jsparse.formats.mma_nm import MmaNM
from jsparse.formats.nm import NM


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class CompressedNM:
  """cuSPARSELt's compressed copy of a 2:4 [M, K] matrix, optionally with the ``NM`` matrix it
  was built from and its ``MmaNM`` copy for decoding.

  Built on the GPU by ``jsparse.cusparselt.compress`` / ``from_nm`` (the bytes are specific to
  the GPU that made them). ``jsparse.spmm(A, B)`` on it runs the product on the sparse tensor
  cores where they are the fast path: through cuSPARSELt at prefill (N >=
  ``jsparse.cusparselt.ROUTE_MIN_N``), through jsparse's mma.sp kernel on ``mma`` at decoding
  (N <= ``jsparse._gpu.sparse_mma.ROUTE_MAX_N``); on ``matrix`` (the Pallas kernels, or the
  reference lowering on the CPU) elsewhere (``jsparse.ops.compressed_nm.route``). For inference:
  the copies are not differentiable and are not updated when ``matrix.data`` changes; compress
  again after changing the weights.

  Attributes:
    data: uint8 [bytes] on the device, opaque (cuSPARSELt's layout for this GPU).
    shape: (M, K) of the dense matrix, static.
    dtype: its dtype (bfloat16 or float16), static.
    matrix: the same matrix as a 2:4 ``NM`` of ``dtype`` (decoding, transposed products, the CPU),
      or None when only the compressed copy is held.
    mma: the same matrix as an ``MmaNM`` (decoding on the sparse tensor cores), or None.
  """

  data: jax.Array
  shape: tuple[int, int] = dataclasses.field(metadata=dict(static=True))
  dtype: Any = dataclasses.field(metadata=dict(static=True))
  matrix: NM | None = None
  mma: MmaNM | None = None

  def __post_init__(self):
    # Static fields only: ``data`` and the matrix's arrays may be tracers or placeholders
    # when JAX rebuilds the pytree.
    shape = validation.check_shape_2d(self.shape)
    object.__setattr__(self, "shape", shape)
    if jnp.dtype(self.dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
      raise TypeError(f"dtype must be bfloat16 or float16 (cuSPARSELt's 2:4 operands), got "
                      f"{self.dtype}")
    object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
    if self.matrix is not None:
      if not isinstance(self.matrix, NM):
        raise TypeError(f"matrix must be a jsparse.NM or None, got {type(self.matrix).__name__}")
      if (self.matrix.n, self.matrix.m) != (2, 4) or tuple(self.matrix.shape) != shape:
        raise ValueError(f"matrix must be 2:4 of shape {shape}, got {self.matrix.n}:"
                         f"{self.matrix.m} of shape {tuple(self.matrix.shape)}")
    if self.mma is not None:
      if not isinstance(self.mma, MmaNM):
        raise TypeError(f"mma must be a jsparse.MmaNM or None, got {type(self.mma).__name__}")
      if tuple(self.mma.shape) != shape or self.mma.dtype != self.dtype:
        raise ValueError(f"mma must be of shape {shape} and dtype {self.dtype}, got "
                         f"{tuple(self.mma.shape)} {self.mma.dtype}")

  def todense(self) -> jax.Array:
    """The dense [M, K] matrix, from ``matrix``. Raises ValueError when only the compressed
    bytes are held (cuSPARSELt's layout is opaque)."""
    if self.matrix is None:
      raise ValueError("this CompressedNM holds only cuSPARSELt's opaque bytes; build it with "
                       "jsparse.cusparselt.from_nm(matrix) to keep the matrix")
    return self.matrix.todense()

  def __matmul__(self, other: Any) -> jax.Array:
    """``A @ B``: ``jsparse.spmm(A, B)``."""
    from jsparse.ops.spmm import spmm
    return spmm(self, other)
