"""SparseTransformerBlock: attention + MLP with residuals, any linear sparse, any mask."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from jsparse.nn.attention import BlockSparseAttention
from jsparse.nn.linear import make_linear


class SparseTransformerBlock(nnx.Module):
  """A transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))`` (``norm="pre"``).

  With ``norm="post"`` (BERT, MiniLM) it is ``norm(x + attn(x))`` then ``norm(x + mlp(x))``.
  The MLP is ``linear -> activation -> linear``. ``sparse_linears`` (SparseLinear keywords) makes
  all six linears sparse at construction; ``jsparse.pruning`` can instead sparsify a dense block
  later, layer by layer. Attention keywords (pattern, block_size, causal, window, density, ...)
  go to ``BlockSparseAttention``.
  """

  def __init__(self, features: int, num_heads: int, mlp_features: int, *,
               num_kv_heads: int | None = None, head_dim: int | None = None, norm: str = "pre",
               activation: Callable[[jax.Array], jax.Array] = nnx.gelu,
               layer_norm_epsilon: float = 1e-6, sparse_linears: dict | None = None,
               dtype: Any = None, param_dtype: Any = jnp.float32, rngs: nnx.Rngs,
               **attention_kwargs):
    num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    if head_dim is None:
      if features % num_heads:
        raise ValueError(f"num_heads={num_heads} must divide features={features} (or give "
                         f"head_dim)")
      head_dim = features // num_heads
    if norm not in ("pre", "post"):
      raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
    self.attention = BlockSparseAttention(features, num_heads, num_kv_heads, head_dim,
                                          sparse_linears=sparse_linears, dtype=dtype,
                                          param_dtype=param_dtype, rngs=rngs, **attention_kwargs)
    linear = dict(sparse=sparse_linears, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.mlp_in = make_linear(features, mlp_features, **linear)
    self.mlp_out = make_linear(mlp_features, features, **linear)
    norm_kwargs = dict(epsilon=layer_norm_epsilon, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs)
    self.attention_norm = nnx.LayerNorm(features, **norm_kwargs)
    self.mlp_norm = nnx.LayerNorm(features, **norm_kwargs)
    self.norm = norm
    self.activation = activation

  def __call__(self, x: jax.Array, *, mask=None) -> jax.Array:
    """[B, S, features] -> [B, S, features]; ``mask`` (a BlockMask) overrides the pattern."""
    mlp = lambda h: self.mlp_out(self.activation(self.mlp_in(h)))
    if self.norm == "pre":
      x = x + self.attention(self.attention_norm(x), mask=mask)
      return x + mlp(self.mlp_norm(x))
    x = self.attention_norm(x + self.attention(x, mask=mask))
    return self.mlp_norm(x + mlp(x))
