"""BlockSparseAttention: grouped-query multi-head attention over a block mask."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jsparse.formats.block_mask import BlockMask, _check_block_size
from jsparse.nn.learned_mask import LearnedBlockMask
from jsparse.nn.linear import make_linear
from jsparse.ops.attention import block_sparse_attention

PATTERNS = ("dense", "causal", "local", "local_global", "learned")


class BlockSparseAttention(nnx.Module):
  """Multi-head attention with grouped-query heads whose score blocks a block mask keeps.

  ``x`` [B, S, features] is projected to ``num_heads`` query heads and ``num_kv_heads`` key and
  value heads of ``head_dim``; attention runs through ``jsparse.block_sparse_attention`` with a
  mask from ``pattern``:

  - "dense": every block (``causal`` still applies elementwise);
  - "causal", "local" (``window`` tokens), "local_global" (``window`` + the first
    ``num_global_blocks`` key blocks): fixed ``BlockMask`` patterns, built per sequence length;
  - "learned": a ``LearnedBlockMask`` (attribute ``gate``) picks per example and head.

  A ``BlockMask`` passed to ``__call__`` overrides the pattern; one with a leading batch axis
  (arrays [B, Hm, nqb, ...], e.g. from ``jax.vmap(BlockMask.from_dense)``) applies one mask per
  example. A key-padding mask is the block mask with ``block_size=(S, 1)``.
  """

  def __init__(self, features: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
               block_size: tuple[int, int] = (64, 64), causal: bool = False,
               pattern: str = "dense", window: int = 256, num_global_blocks: int = 1,
               density: float = 0.25, num_local_blocks: int = 1, gate_dim: int = 32,
               use_bias: bool = True, sparse_linears: dict | None = None, dtype: Any = None,
               param_dtype: Any = jnp.float32, impl: str = "auto", rngs: nnx.Rngs):
    """Args:
      features: width of x and of the output.
      num_heads, num_kv_heads: query heads, a multiple of the key/value heads.
      head_dim: size of each head.
      block_size: (bq, bk) of the mask. causal: bottom-right causal masking.
      pattern: one of PATTERNS; window, num_global_blocks: of the fixed patterns; density,
        num_local_blocks, gate_dim: of the learned gate.
      use_bias: biases of the four projections.
      sparse_linears: None (dense projections) or the ``SparseLinear`` keywords for all four.
      dtype, param_dtype, rngs: as in Flax. impl: backend of the attention op.
    """
    for name, value in (("features", features), ("num_heads", num_heads),
                        ("num_kv_heads", num_kv_heads), ("head_dim", head_dim)):
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if num_heads % num_kv_heads:
      raise ValueError(f"num_heads={num_heads} must be a multiple of num_kv_heads={num_kv_heads}")
    if pattern not in PATTERNS:
      raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    self.block_size = _check_block_size(block_size)
    linear = dict(sparse=sparse_linears, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                  rngs=rngs)
    self.query = make_linear(features, num_heads * head_dim, **linear)
    self.key = make_linear(features, num_kv_heads * head_dim, **linear)
    self.value = make_linear(features, num_kv_heads * head_dim, **linear)
    self.out = make_linear(num_heads * head_dim, features, **linear)
    self.gate = (LearnedBlockMask(num_heads, num_kv_heads, head_dim, block_size=self.block_size,
                                  density=density, causal=causal,
                                  num_local_blocks=num_local_blocks, gate_dim=gate_dim,
                                  param_dtype=param_dtype, rngs=rngs)
                 if pattern == "learned" else nnx.data(None))
    self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
    self.causal, self.pattern = causal, pattern
    self.window, self.num_global_blocks = window, num_global_blocks
    self.impl = impl

  def fixed_mask(self, seq_q: int, seq_k: int) -> BlockMask:
    """The fixed pattern's mask for these sequence lengths (not for "learned")."""
    kwargs = dict(block_size=self.block_size)
    if self.pattern == "dense":
      return BlockMask.full(seq_q, seq_k, **kwargs)
    if self.pattern == "causal":
      return BlockMask.causal(seq_q, seq_k, **kwargs)
    if self.pattern == "local":
      return BlockMask.local(seq_q, seq_k, window=self.window, causal=self.causal, **kwargs)
    if self.pattern == "local_global":
      return BlockMask.local_global(seq_q, seq_k, window=self.window, causal=self.causal,
                                    num_global_blocks=self.num_global_blocks, **kwargs)
    raise ValueError("a learned pattern has no fixed mask")

  def __call__(self, x: jax.Array, *, mask: BlockMask | None = None) -> jax.Array:
    """[B, S, features] -> [B, S, features]; ``mask`` overrides the pattern (see the class)."""
    if x.ndim != 3:
      raise ValueError(f"x must be [B, S, features], got shape {x.shape}")
    batch, seq = x.shape[:2]
    q = self.query(x).reshape(batch, seq, self.num_heads, self.head_dim)
    k = self.key(x).reshape(batch, seq, self.num_kv_heads, self.head_dim)
    v = self.value(x).reshape(batch, seq, self.num_kv_heads, self.head_dim)
    attend = lambda q, k, v, mask: block_sparse_attention(q, k, v, mask, causal=self.causal,
                                                          impl=self.impl)
    if mask is None and self.pattern == "learned":
      dense_masks = self.gate(q, k)
      max_kept = self.gate.max_kept(seq, seq)
      mask = jax.vmap(lambda m: BlockMask.from_dense(m, block_size=self.block_size,
                                                     max_kept=max_kept))(dense_masks)
    elif mask is None:
      mask = self.fixed_mask(seq, seq)
    if mask.kv_block_counts.ndim == 3:
      # One mask per example (learned, or key padding): vmap over the batch, each call B = 1.
      out = jax.vmap(lambda q, k, v, m: attend(q[None], k[None], v[None], m)[0])(q, k, v, mask)
    else:
      out = attend(q, k, v, mask)
    return self.out(out.reshape(batch, seq, self.num_heads * self.head_dim))
