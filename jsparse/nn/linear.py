"""SparseLinear: ``nnx.Linear`` with a sparse weight (CSR, BSR or N:M), one SpMM per call."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import dtypes, initializers

from jsparse.formats import CompressedNM, MmaNM, SparseMatrix
from jsparse.ops.spmm import matmul_transposed
from jsparse.pruning import patterns
from jsparse.pruning.masks import check_sparsity
from jsparse.nn.sparse_weight import SparseWeight

default_kernel_init = initializers.lecun_normal()


class SparseCoreCopy(nnx.Variable):
  """A 2:4 weight's copy for the sparse tensor cores (cuSPARSELt's compressed bytes,
  ``jsparse.CompressedNM.data``, or an ``jsparse.MmaNM``'s values / meta): inference state,
  never trained."""


def sparse_matmul(x: jax.Array, matrix: SparseMatrix | CompressedNM, *, impl: str) -> jax.Array:
  """``x @ W.T`` for x [..., in] and a sparse W [out, in]: one SpMM, ``W @ x.T``, transposed
  (``jsparse.ops.matmul_transposed``)."""
  return matmul_transposed(x, matrix, impl=impl)


class SparseLinear(nnx.Module):
  """A linear layer ``y = x @ W.T + b`` whose weight W [out_features, in_features] is sparse.

  Mirrors ``nnx.Linear`` (same call, ``bias``, ``dtype`` and ``param_dtype``), so either can
  replace the other; the weight is held in the sparse-times-dense layout [out, in] (N:M groups
  run along ``in_features``) and the forward pass is one ``jsparse.spmm``. The stored values are
  trainable (``nnx.grad``), the pattern is fixed.

  Attributes:
    weight: ``SparseWeight`` (``weight.values`` the ``nnx.Param``, ``weight.matrix`` the matrix).
    bias: ``nnx.Param`` [out_features] or None.
    sparse_core: ``SparseCoreCopy`` of the 2:4 weight for the sparse tensor cores, or None
      (``use_sparse_tensor_cores``).
    sparse_core_values, sparse_core_meta: ``SparseCoreCopy`` of the weight's ``jsparse.MmaNM``
      arrays (the mma.sp decoding kernel), or None.
  """

  def __init__(self, in_features: int, out_features: int, *, format: str = "csr",
               sparsity: float | None = 0.5, nm: Sequence[int] = (2, 4),
               block_shape: Sequence[int] = (16, 16), method: str = "magnitude",
               mask: Any = None, use_bias: bool = True, dtype: Any = None,
               param_dtype: Any = jnp.float32, kernel_init: Any = default_kernel_init,
               bias_init: Any = initializers.zeros_init(), impl: str = "auto", rngs: nnx.Rngs):
    """Draws a dense kernel [in, out] with ``kernel_init`` and keeps the entries ``method`` picks.

    Args:
      in_features, out_features: sizes of the input and output feature axes.
      format: "csr", "bsr" (whole ``block_shape`` blocks kept), "nm" (n of every m inputs) or
        "tiled" (unstructured, stored as bitmap tiles for the tensor-core kernel).
      sparsity: fraction of weights (blocks for BSR) pruned, in [0, 1); ignored for "nm".
      nm: (n, m) for "nm"; m must divide ``in_features``.
      block_shape: (bm, bk) for "bsr", dividing (out_features, in_features).
      method: "magnitude" (largest kept) or "random" (drawn from ``rngs``).
      mask: bool [out_features, in_features] to keep instead of ``method``'s choice.
      use_bias, dtype, param_dtype, kernel_init, bias_init, rngs: as in ``nnx.Linear``.
      impl: backend of the SpMM ("auto", "reference", "ffi", "pallas").
    """
    for name, value in (("in_features", in_features), ("out_features", out_features)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    format = patterns.check_format(format)
    if format != "nm" and mask is None:
      check_sparsity(sparsity)
    weight = kernel_init(rngs.params(), (in_features, out_features), param_dtype).T
    self.weight = SparseWeight.pruned(weight, mask=mask, format=format, sparsity=sparsity,
                                      method=method, nm=nm, block_shape=block_shape, rngs=rngs)
    self.bias = (nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias
                 else nnx.data(None))
    self.sparse_core = nnx.data(None)
    self.sparse_core_values = nnx.data(None)
    self.sparse_core_meta = nnx.data(None)
    self.in_features = in_features
    self.out_features = out_features
    self.use_bias = use_bias
    self.format = format
    self.dtype = dtype
    self.param_dtype = param_dtype
    self.impl = impl

  @classmethod
  def from_dense(cls, linear: nnx.Linear, *, format: str = "csr", sparsity: float | None = 0.5,
                 method: str = "magnitude", nm: Sequence[int] = (2, 4),
                 block_shape: Sequence[int] = (16, 16), mask: Any = None, seed: int = 0,
                 impl: str = "auto") -> "SparseLinear":
    """The pruned copy of an ``nnx.Linear``: its kernel with the pruned entries removed.

    Args:
      linear: the dense layer (kernel [in, out]); it is not modified.
      format, sparsity, nm, block_shape, method, mask, impl: as in the constructor.
      seed: seeds ``method="random"``.

    Returns:
      a SparseLinear whose outputs equal the dense layer's with the pruned weights set to 0.
    """
    if not isinstance(linear, nnx.Linear):
      raise TypeError(f"linear must be an nnx.Linear, got {type(linear).__name__}")
    kernel = linear.kernel[...]
    bias = linear.bias[...] if linear.bias is not None else None
    return cls(linear.in_features, linear.out_features, format=format, sparsity=sparsity,
               nm=nm, block_shape=block_shape, method=method, mask=mask,
               use_bias=bias is not None, dtype=linear.dtype, param_dtype=kernel.dtype,
               kernel_init=lambda *_: kernel, bias_init=lambda *_: bias, impl=impl,
               rngs=nnx.Rngs(seed))

  @property
  def two_four(self) -> bool:
    """Whether the weight is 2:4 N:M (what the sparse tensor cores take)."""
    if self.format != "nm":
      return False
    matrix = self.weight.matrix
    return (matrix.n, matrix.m) == (2, 4)

  @property
  def sparsity(self) -> float:
    """Fraction of the [out, in] weight not stored (BSR: explicit zeros inside kept blocks count
    as stored)."""
    matrix = self.weight.matrix
    return 1.0 - matrix.data.size / (self.in_features * self.out_features)

  def use_sparse_tensor_cores(self, enable: bool = True, *, decoding: bool = True) -> None:
    """Holds cuSPARSELt's compressed copy of the current 2:4 weight and, with ``decoding``, its
    ``jsparse.MmaNM`` copy (``enable=False`` drops both).

    With them, calls whose inputs have the weight's dtype (bfloat16/float16) run on the GPU's
    sparse tensor cores: through cuSPARSELt with at least ``jsparse.cusparselt.ROUTE_MIN_N``
    rows of tokens (prefill) when the weight has at least ``ROUTE_MIN_WEIGHT`` entries, through
    jsparse's mma.sp kernel with at most ``jsparse._gpu.sparse_mma.ROUTE_MAX_N`` rows
    (decoding); other calls keep the Pallas N:M kernels (``jsparse.ops.compressed_nm.route``).
    For inference: the copy is not differentiable and is not updated when the values change
    (training, loading a checkpoint); call this again afterwards. Needs a CUDA GPU and the
    cuSPARSELt library (``jsparse.cusparselt.available()``).

    Raises:
      ValueError: the weight is not 2:4 N:M, or not bfloat16/float16 (cast the parameters
        first), or the shape is not a multiple of 16.
    """
    if not enable:
      self.sparse_core = nnx.data(None)
      self.sparse_core_values = nnx.data(None)
      self.sparse_core_meta = nnx.data(None)
      return
    matrix = self.weight.matrix
    if not self.two_four:
      nm = f" {matrix.n}:{matrix.m}" if self.format == "nm" else ""
      raise ValueError(f"the sparse tensor cores need a 2:4 N:M weight, this layer's is "
                       f"{self.format}{nm}")
    from jsparse._gpu import cusparselt
    compressed = cusparselt.from_nm(matrix, keep_matrix=False, decoding=decoding)
    self.sparse_core = SparseCoreCopy(compressed.data)
    if compressed.mma is None:
      self.sparse_core_values = nnx.data(None)
      self.sparse_core_meta = nnx.data(None)
    else:
      self.sparse_core_values = SparseCoreCopy(compressed.mma.values)
      self.sparse_core_meta = SparseCoreCopy(compressed.mma.meta)

  def __call__(self, inputs: jax.Array) -> jax.Array:
    """[..., in_features] -> [..., out_features], in ``dtype`` (else the promoted input dtype)."""
    if inputs.shape[-1] != self.in_features:
      raise ValueError(f"inputs must have last axis in_features={self.in_features}, got shape "
                       f"{inputs.shape}")
    values = self.weight.values[...]
    stored_dtype = values.dtype  # the compressed copy's
    bias = self.bias[...] if self.bias is not None else None
    inputs, values, bias = dtypes.promote_dtype((inputs, values, bias), dtype=self.dtype)
    matrix = self.weight.matrix.with_data(values)
    if self.sparse_core is not None:
      mma = None
      if self.sparse_core_values is not None:
        mma = MmaNM(self.sparse_core_values[...], self.sparse_core_meta[...], matrix.shape,
                    stored_dtype, validate=False)  # built by MmaNM.from_nm
      matrix = CompressedNM(self.sparse_core[...], matrix.shape, stored_dtype, matrix=matrix,
                            mma=mma)
    y = sparse_matmul(inputs, matrix, impl=self.impl)
    if bias is not None:
      y = y + bias
    return y



def make_linear(in_features: int, out_features: int, *, sparse: dict | None, use_bias: bool = True,
                dtype: Any = None, param_dtype: Any = jnp.float32,
                rngs: nnx.Rngs) -> nnx.Linear | SparseLinear:
  """An ``nnx.Linear``, or a ``SparseLinear`` built with the keywords in ``sparse`` (format,
  sparsity, nm, block_shape, ...) when it is not None: how composite layers choose their linears."""
  if sparse is None:
    return nnx.Linear(in_features, out_features, use_bias=use_bias, dtype=dtype,
                      param_dtype=param_dtype, rngs=rngs)
  return SparseLinear(in_features, out_features, use_bias=use_bias, dtype=dtype,
                      param_dtype=param_dtype, rngs=rngs, **sparse)


def use_sparse_tensor_cores(model: nnx.Module, enable: bool = True, *,
                            decoding: bool = True) -> int:
  """``SparseLinear.use_sparse_tensor_cores(enable, decoding=decoding)`` on every 2:4
  ``SparseLinear`` in ``model`` (after casting the parameters to bfloat16/float16, before
  inference). Returns how many layers it set."""
  layers = [module for _, module in nnx.iter_graph(model)
            if isinstance(module, SparseLinear) and module.two_four]
  for layer in layers:
    layer.use_sparse_tensor_cores(enable, decoding=decoding)
  return len(layers)


def tune_sparse_tensor_cores(model: nnx.Module, tokens: int) -> dict[tuple[int, int], int]:
  """``jsparse.cusparselt.autotune`` of every distinct weight shape [out, in] that ``model``'s
  layers hold compressed (``use_sparse_tensor_cores``), for calls of ``tokens`` rows: the
  products then use the fastest algorithm. Eager (outside ``jit``), once per token count.
  Returns the algorithm chosen per shape; shapes whose calls of ``tokens`` rows do not reach
  cuSPARSELt (``jsparse.ops.compressed_nm.route``) are left out.
  Raises ValueError naming ``tokens`` when it is not a positive int."""
  from jsparse._gpu import cusparselt
  from jsparse.ops.compressed_nm import route
  if not isinstance(tokens, (int, np.integer)) or tokens < 1:
    raise ValueError(f"tokens must be a positive int, got {tokens!r}")
  chosen: dict[tuple[int, int], int] = {}
  for _, module in nnx.iter_graph(model):
    if not isinstance(module, SparseLinear) or module.sparse_core is None:
      continue
    shape = (module.out_features, module.in_features)
    values = module.weight.values[...]
    compressed = CompressedNM(module.sparse_core[...], shape, values.dtype,
                              matrix=module.weight.matrix)
    if shape not in chosen and route(compressed, int(tokens), values.dtype, transpose_a=False,
                                     impl="auto") == "cusparselt":
      chosen[shape] = cusparselt.autotune(compressed, int(tokens), tokens_major=True)
  return chosen
