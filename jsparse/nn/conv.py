"""SparseConv: a 2-D NHWC convolution as im2col + one SpMM (the DLMC ResNet-50 layout)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import dtypes, initializers

from jsparse.nn.linear import sparse_matmul
from jsparse.nn.sparse_weight import SparseWeight
from jsparse.pruning import patterns
from jsparse.pruning.masks import check_sparsity

default_kernel_init = initializers.lecun_normal()


def _pair(value: Any, name: str) -> tuple[int, int]:
  pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
  if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
    raise ValueError(f"{name} must be a positive int or two of them, got {value!r}")
  return int(pair[0]), int(pair[1])


class SparseConv(nnx.Module):
  """2-D convolution over NHWC inputs with a sparse weight [out_features, in_features*kh*kw].

  The forward pass extracts patches (im2col, feature order (channel, kh, kw)) and multiplies them
  by the sparse weight in one ``jsparse.spmm``; the weight is ``nnx.Conv``'s kernel
  [kh, kw, in, out] laid out as the DLMC ResNet-50 matrices are, one row per output channel.
  N:M groups run along the flattened (channel, kh, kw) axis.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int | Sequence[int], *,
               strides: int | Sequence[int] = 1, padding: str | Sequence[tuple[int, int]] = "SAME",
               format: str = "csr", sparsity: float | None = 0.5, nm: Sequence[int] = (2, 4),
               block_shape: Sequence[int] = (16, 16), method: str = "magnitude",
               mask: Any = None, use_bias: bool = True, dtype: Any = None,
               param_dtype: Any = jnp.float32, kernel_init: Any = default_kernel_init,
               bias_init: Any = initializers.zeros_init(), impl: str = "auto", rngs: nnx.Rngs):
    """Args as in ``nnx.Conv`` (no dilation or groups) plus the sparsity ones of SparseLinear.

    ``mask`` is bool [out_features, in_features * kh * kw] in the weight's layout.
    """
    self.kernel_size = _pair(kernel_size, "kernel_size")
    self.strides = _pair(strides, "strides")
    if not (padding in ("SAME", "VALID") or
            (len(padding) == 2 and all(len(p) == 2 for p in padding))):
      raise ValueError(f"padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)), got "
                       f"{padding!r}")
    format = patterns.check_format(format)
    if format != "nm" and mask is None:
      check_sparsity(sparsity)
    kh, kw = self.kernel_size
    kernel = kernel_init(rngs.params(), (kh, kw, in_features, out_features), param_dtype)
    weight = jnp.transpose(kernel, (3, 2, 0, 1)).reshape(out_features, in_features * kh * kw)
    self.weight = SparseWeight.pruned(weight, mask=mask, format=format, sparsity=sparsity,
                                      method=method, nm=nm, block_shape=block_shape, rngs=rngs)
    self.bias = (nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias
                 else nnx.data(None))
    self.padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
    self.in_features = in_features
    self.out_features = out_features
    self.format = format
    self.dtype = dtype
    self.impl = impl

  @classmethod
  def from_dense(cls, conv: nnx.Conv, *, format: str = "csr", sparsity: float | None = 0.5,
                 method: str = "magnitude", nm: Sequence[int] = (2, 4),
                 block_shape: Sequence[int] = (16, 16), mask: Any = None, seed: int = 0,
                 impl: str = "auto") -> "SparseConv":
    """The pruned copy of a 2-D ``nnx.Conv`` (no dilation, one feature group)."""
    if not isinstance(conv, nnx.Conv):
      raise TypeError(f"conv must be an nnx.Conv, got {type(conv).__name__}")
    kernel = conv.kernel[...]
    dilated = any(d not in (None, 1, (1, 1)) for d in (conv.input_dilation, conv.kernel_dilation))
    if kernel.ndim != 4 or conv.feature_group_count != 1 or dilated:
      raise ValueError("conv must be a 2-D convolution without dilation or feature groups")
    bias = conv.bias[...] if conv.bias is not None else None
    return cls(conv.in_features, conv.out_features, kernel.shape[:2], strides=conv.strides,
               padding=conv.padding, format=format, sparsity=sparsity, nm=nm,
               block_shape=block_shape, method=method, mask=mask, use_bias=bias is not None,
               dtype=conv.dtype, param_dtype=kernel.dtype, kernel_init=lambda *_: kernel,
               bias_init=lambda *_: bias, impl=impl, rngs=nnx.Rngs(seed))

  def __call__(self, inputs: jax.Array) -> jax.Array:
    """[N, H, W, in_features] -> [N, H', W', out_features]."""
    if inputs.ndim != 4 or inputs.shape[-1] != self.in_features:
      raise ValueError(f"inputs must be [N, H, W, in_features={self.in_features}], got shape "
                       f"{inputs.shape}")
    values = self.weight.values[...]
    bias = self.bias[...] if self.bias is not None else None
    inputs, values, bias = dtypes.promote_dtype((inputs, values, bias), dtype=self.dtype)
    patches = jax.lax.conv_general_dilated_patches(
        inputs, self.kernel_size, self.strides, self.padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
    y = sparse_matmul(patches, self.weight.matrix.with_data(values), impl=self.impl)
    return y + bias if bias is not None else y
