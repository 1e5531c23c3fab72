"""Block-sparse attention: softmax attention over the kept (query block, key block) pairs only.

The primitive ``block_sparse_attention_p`` has operands ``(q, k, v, kv_block_indices,
kv_block_counts)`` and the static parameters ``layout`` (an ``AttentionLayout``, format
``"block"``) and ``impl``. Its reference lowering below is exact dense attention with the block
mask applied; faster kernels (Pallas on CUDA) register under op ``"attention"``, format
``"block"`` and take the same operands and parameters.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching

from jsparse.formats.block_mask import BlockMask, dense_block_mask
from jsparse.formats.validation import VALUE_DTYPES
from jsparse.ops import _primitive, registry
from jsparse.ops.reference import HIGHEST, accumulation_dtype

block_sparse_attention_p = Primitive("jsparse_block_sparse_attention")


@dataclasses.dataclass(frozen=True)
class AttentionLayout:
  """Static parameters of a block-sparse attention call.

  Attributes:
    format: always ``"block"`` (the registry key of the attention kernels).
    block_size: ``(bq, bk)``, query and key block lengths of the mask.
    causal: also mask key position j for query position i unless ``j <= i + (Sk - Sq)``.
    scale: multiplier of ``q . k`` before the softmax.
  """

  block_size: tuple[int, int]
  causal: bool
  scale: float
  format: str = "block"


def block_sparse_attention(q: Any, k: Any, v: Any, mask: BlockMask, *, causal: bool = False,
                           scale: float | None = None, impl: str = "auto") -> jax.Array:
  """Multi-head (grouped-query) attention restricted to the blocks that ``mask`` keeps.

  Args:
    q: [B, Sq, Hq, D] queries.
    k: [B, Sk, Hkv, D] keys; ``Hq`` is a multiple of ``Hkv`` and query head h reads key/value
      head ``h // (Hq // Hkv)``.
    v: [B, Sk, Hkv, D] values. q, k and v share one dtype: float16, bfloat16, float32 or float64.
    mask: ``BlockMask`` with ``Hm`` = 1 or Hq heads, ``ceil(Sq / bq)`` query blocks and
      ``ceil(Sk / bk)`` key blocks.
    causal: bottom-right causal masking on top of the block mask: key j is visible to query i iff
      ``j <= i + (Sk - Sq)``.
    scale: score multiplier, ``1 / sqrt(D)`` by default.
    impl: ``"auto"``, ``"reference"`` or ``"pallas"``.

  Returns:
    [B, Sq, Hq, D] in q's dtype: for each query the softmax-weighted sum of the values of its
    visible kept keys (float32 accumulation for half types); 0 for a query with none.
    Differentiation (JVP, grad) always runs the reference lowering.
  """
  q = _primitive.check_dense("q", q, 4, "[B, Sq, Hq, D]")
  k = _primitive.check_dense("k", k, 4, "[B, Sk, Hkv, D]")
  v = _primitive.check_dense("v", v, 4, "[B, Sk, Hkv, D]")
  if not isinstance(mask, BlockMask):
    raise TypeError(f"mask must be a jsparse.BlockMask, got {type(mask).__name__}")
  batch, seq_q, heads_q, head_dim = q.shape
  if k.shape != v.shape:
    raise ValueError(f"k and v must have the same shape [B, Sk, Hkv, D], got k {k.shape} and "
                     f"v {v.shape}")
  if k.shape[0] != batch or k.shape[3] != head_dim:
    raise ValueError(f"k must be [B={batch}, Sk, Hkv, D={head_dim}] to match q {q.shape}, got "
                     f"{k.shape}")
  heads_kv = k.shape[2]
  if heads_kv == 0 or heads_q % heads_kv:
    raise ValueError(f"the query heads (q.shape[2] = {heads_q}) must be a multiple of the "
                     f"key/value heads (k.shape[2] = {heads_kv})")
  if q.dtype != k.dtype or q.dtype != v.dtype or jnp.dtype(q.dtype) not in VALUE_DTYPES:
    raise TypeError(f"q, k and v must share one dtype among float16, bfloat16, float32, float64; "
                    f"got q {q.dtype}, k {k.dtype}, v {v.dtype}")
  bq, bk = mask.block_size
  expected = (math.ceil(seq_q / bq), math.ceil(k.shape[1] / bk))
  if (mask.num_q_blocks, mask.num_kv_blocks) != expected or mask.num_heads not in (1, heads_q):
    raise ValueError(f"mask must have shape (Hm in {{1, {heads_q}}}, ceil(Sq/bq), ceil(Sk/bk)) = "
                     f"(1 or {heads_q}, {expected[0]}, {expected[1]}) for Sq={seq_q}, "
                     f"Sk={k.shape[1]}, block_size={mask.block_size}; got {mask.shape}")
  for name, array in (("mask.kv_block_indices", mask.kv_block_indices),
                      ("mask.kv_block_counts", mask.kv_block_counts)):
    if array.dtype != jnp.int32:
      raise TypeError(f"{name} must be int32, got {array.dtype}")
  scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
  layout = AttentionLayout(block_size=(bq, bk), causal=bool(causal), scale=scale)
  return block_sparse_attention_p.bind(q, k, v, mask.kv_block_indices, mask.kv_block_counts,
                                       layout=layout, impl=registry.check_impl(impl))


def reference_attention(q, k, v, kv_block_indices, kv_block_counts, *, layout: AttentionLayout,
                        **unused_params) -> jax.Array:
  """The reference lowering: dense attention with the block (and causal) mask applied."""
  batch, seq_q, heads_q, head_dim = q.shape
  seq_k, heads_kv = k.shape[1], k.shape[2]
  group = heads_q // heads_kv
  acc = accumulation_dtype(q.dtype)
  visible = element_mask(kv_block_indices, kv_block_counts, layout, seq_q, seq_k)
  if visible.shape[0] == 1:
    visible = visible[:, None]                      # [1, 1, Sq, Sk]: every head
  else:
    visible = visible.reshape(heads_kv, group, seq_q, seq_k)
  grouped_q = q.reshape(batch, seq_q, heads_kv, group, head_dim).astype(acc)
  scores = jnp.einsum("bqhgd,bkhd->bhgqk", grouped_q, k.astype(acc), precision=HIGHEST)
  scores = scores * jnp.asarray(layout.scale, acc)
  row_max = jnp.max(jnp.where(visible, scores, -jnp.inf), axis=-1, keepdims=True)
  row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0))
  weights = jnp.where(visible, jnp.exp(scores - row_max), 0)
  total = jnp.sum(weights, axis=-1, keepdims=True)
  weights = weights / jnp.where(total > 0, total, 1)
  out = jnp.einsum("bhgqk,bkhd->bqhgd", weights, v.astype(acc), precision=HIGHEST)
  return out.reshape(batch, seq_q, heads_q, head_dim).astype(q.dtype)


def element_mask(kv_block_indices, kv_block_counts, layout: AttentionLayout, seq_q: int,
                 seq_k: int) -> jax.Array:
  """bool [Hm, Sq, Sk]: whether key j is visible to query i (kept block, and causal if asked)."""
  bq, bk = layout.block_size
  blocks = dense_block_mask(kv_block_indices, kv_block_counts, math.ceil(seq_k / bk))
  visible = jnp.repeat(jnp.repeat(blocks, bq, axis=1), bk, axis=2)[:, :seq_q, :seq_k]
  if layout.causal:
    query_pos = jnp.arange(seq_q)[:, None] + (seq_k - seq_q)
    visible = visible & (jnp.arange(seq_k)[None, :] <= query_pos)
  return visible


def _attention_abstract_eval(q, k, v, kv_block_indices, kv_block_counts, *, layout, impl):
  return jax.core.ShapedArray(q.shape, q.dtype)


def _attention_batching_rule(batched_args, batch_dims, *, layout, impl):
  q, k, v, indices, counts = batched_args
  if batch_dims[3] is not None or batch_dims[4] is not None:
    return _primitive.batch_by_loop(block_sparse_attention_p, batched_args, batch_dims,
                                    layout=layout, impl=impl)
  # Only q, k, v are batched: fold the vmapped axis into their batch axis B, one call.
  size = next(arg.shape[dim] for arg, dim in zip(batched_args[:3], batch_dims[:3])
              if dim is not None)
  folded = []
  for arg, dim in zip((q, k, v), batch_dims[:3]):
    arg = (jnp.broadcast_to(arg, (size, *arg.shape)) if dim is None
           else jnp.moveaxis(arg, dim, 0))
    folded.append(arg.reshape(size * arg.shape[1], *arg.shape[2:]))
  out = block_sparse_attention_p.bind(*folded, indices, counts, layout=layout, impl=impl)
  return out.reshape(size, -1, *out.shape[1:]), 0


def _attention_jvp(primals, tangents, *, layout, impl):
  q, k, v, indices, counts = primals
  dense_tangents = tuple(ad.instantiate_zeros(t) for t in tangents[:3])
  return jax.jvp(lambda q, k, v: reference_attention(q, k, v, indices, counts, layout=layout),
                 (q, k, v), dense_tangents)


block_sparse_attention_p.def_abstract_eval(_attention_abstract_eval)
_primitive.define_eager_impl(block_sparse_attention_p)
_primitive.register_lowerings(block_sparse_attention_p, "attention", reference_attention)
batching.primitive_batchers[block_sparse_attention_p] = _attention_batching_rule
ad.primitive_jvps[block_sparse_attention_p] = _attention_jvp
