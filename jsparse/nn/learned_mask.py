"""LearnedBlockMask: a small gate that picks, per query block, which key blocks to attend to.

As in SeerAttention and NSA's selection branch: queries and keys are mean-pooled per block,
projected per head to a small gate space, and their dot products score every (query block,
key block) pair. Each query block keeps its top-k visible key blocks under a density budget
(the diagonal and ``num_local_blocks - 1`` preceding blocks always). The gate trains by a
soft relaxation: its softmax over key blocks is matched (KL divergence) to dense attention's
block-pooled attention map; the hard top-k mask is what ``BlockSparseAttention`` then uses.

References:
  Y. Gao et al. SeerAttention: Learning Intrinsic Sparse Attention in Your LLMs. arXiv:2410.13276.
  J. Yuan et al. Native Sparse Attention. arXiv:2502.11089.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx.nn import initializers

from jsparse.formats.block_mask import BlockMask, _check_block_size


def check_divides(seq_len: int, block: int, name: str) -> None:
  if seq_len % block:
    raise ValueError(f"the sequence length {name}={seq_len} must be a multiple of the block "
                     f"size {block} for a learned block mask")


class LearnedBlockMask(nnx.Module):
  """Scores block pairs from pooled queries and keys; yields hard masks under a budget.

  Attributes:
    density: fraction of the visible key blocks each query block keeps (static; change it to
      trade quality for speed at inference). 1.0 keeps every visible block.
    deterministic: when False (training), calls also ``sow`` the gate's distillation loss as
      ``nnx.Intermediate`` ``gate_loss``; ``model.eval()`` sets it True.
  """

  def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, *,
               block_size: tuple[int, int] = (64, 64), density: float = 0.25,
               causal: bool = True, num_local_blocks: int = 1, gate_dim: int = 32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if num_kv_heads < 1 or num_heads % num_kv_heads:
      raise ValueError(f"num_heads={num_heads} must be a multiple of num_kv_heads={num_kv_heads}")
    self.block_size = _check_block_size(block_size)
    self.density = check_density(density)
    if num_local_blocks < 0:
      raise ValueError(f"num_local_blocks must be >= 0, got {num_local_blocks}")
    init = initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
    self.query_gate = nnx.Param(init(rngs.params(), (num_heads, head_dim, gate_dim), param_dtype))
    self.key_gate = nnx.Param(init(rngs.params(), (num_kv_heads, head_dim, gate_dim), param_dtype))
    self.num_heads, self.num_kv_heads, self.gate_dim = num_heads, num_kv_heads, gate_dim
    self.causal = causal
    self.num_local_blocks = num_local_blocks
    self.deterministic = False

  def scores(self, q: jax.Array, k: jax.Array) -> jax.Array:
    """Gate logits float32 [B, H, nqb, nkb] for q [B, Sq, H, D] and k [B, Sk, Hkv, D]."""
    bq, bk = self.block_size
    check_divides(q.shape[1], bq, "Sq")
    check_divides(k.shape[1], bk, "Sk")
    pooled_q = q.reshape(q.shape[0], -1, bq, *q.shape[2:]).astype(jnp.float32).mean(axis=2)
    pooled_k = k.reshape(k.shape[0], -1, bk, *k.shape[2:]).astype(jnp.float32).mean(axis=2)
    gate_q = jnp.einsum("bihd,hdg->bhig", pooled_q, self.query_gate[...].astype(jnp.float32))
    gate_k = jnp.einsum("bjhd,hdg->bhjg", pooled_k, self.key_gate[...].astype(jnp.float32))
    gate_k = jnp.repeat(gate_k, self.num_heads // self.num_kv_heads, axis=1)
    return jnp.einsum("bhig,bhjg->bhij", gate_q, gate_k) / math.sqrt(self.gate_dim)

  def __call__(self, q: jax.Array, k: jax.Array) -> jax.Array:
    """Hard block mask bool [B, H, nqb, nkb] for q [B, Sq, H, D], k [B, Sk, Hkv, D].

    Sq and Sk must be multiples of the block size. Sows ``gate_loss`` unless deterministic.
    """
    scores = self.scores(q, k)
    visible, forced, budget = block_budget(q.shape[1], k.shape[1], self.block_size,
                                           self.density, self.causal, self.num_local_blocks)
    ranked = jnp.where(forced, jnp.inf, jnp.where(visible, scores, -jnp.inf))
    # rank[j] = position of block j in descending score order (stable on ties).
    rank = jnp.argsort(jnp.argsort(-ranked, axis=-1, stable=True), axis=-1)
    mask = (rank < budget[:, None]) & visible
    if not self.deterministic:
      self.sow(nnx.Intermediate, "gate_loss", self.distillation_loss(scores, q, k))
    return jax.lax.stop_gradient(mask)

  def distillation_loss(self, scores: jax.Array, q: jax.Array, k: jax.Array) -> jax.Array:
    """KL(dense attention's block-pooled map || softmax of the gate), averaged (float32 scalar).

    The target, from q and k under ``stop_gradient``, sums each query's attention probabilities
    over every key block and averages them over the queries of the query block.
    """
    bq, bk = self.block_size
    batch, seq_q, heads, head_dim = q.shape
    seq_k = k.shape[1]
    q, k = jax.lax.stop_gradient(q).astype(jnp.float32), jax.lax.stop_gradient(k).astype(jnp.float32)
    k = jnp.repeat(k, heads // k.shape[2], axis=2)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
    if self.causal:
      visible = jnp.arange(seq_k)[None, :] <= jnp.arange(seq_q)[:, None] + (seq_k - seq_q)
      logits = jnp.where(visible, logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1)
    target = probs.reshape(batch, heads, seq_q // bq, bq, seq_k // bk, bk).sum(-1).mean(3)
    block_visible, _, _ = block_budget(seq_q, seq_k, self.block_size, 1.0, self.causal, 0)
    log_gate = jax.nn.log_softmax(jnp.where(block_visible, scores, -jnp.inf), axis=-1)
    log_gate = jnp.where(block_visible, log_gate, 0.0)
    kl = jnp.sum(jax.scipy.special.xlogy(target, target) - target * log_gate, axis=-1)
    return jnp.mean(kl)

  def block_mask(self, q: jax.Array, k: jax.Array) -> BlockMask:
    """The hard mask of a single sequence (q [1, Sq, H, D]) as a ``BlockMask`` with Hm = H."""
    if q.shape[0] != 1:
      raise ValueError(f"block_mask takes one sequence (q.shape[0] == 1), got {q.shape[0]}")
    mask = self(q, k)[0]
    return BlockMask.from_dense(mask, block_size=self.block_size,
                                max_kept=self.max_kept(q.shape[1], k.shape[1]))

  def max_kept(self, seq_q: int, seq_k: int) -> int:
    """The most key blocks any query block keeps at this density (static)."""
    _, _, budget = block_budget(seq_q, seq_k, self.block_size, self.density, self.causal,
                                self.num_local_blocks)
    return max(1, int(budget.max()))


def check_density(density) -> float:
  if not isinstance(density, (int, float)) or not 0.0 < float(density) <= 1.0:
    raise ValueError(f"density must be in (0, 1], got {density!r}")
  return float(density)


def block_budget(seq_q: int, seq_k: int, block_size: tuple[int, int], density: float,
                 causal: bool, num_local_blocks: int):
  """Static (NumPy) structure of a learned mask.

  Returns:
    visible bool [nqb, nkb] (blocks holding a causally visible pair, or all), forced bool
    [nqb, nkb] (the diagonal block and ``num_local_blocks - 1`` before it, when visible) and
    budget int [nqb]: ``max(#forced, ceil(density * #visible))`` blocks kept per query block.
  """
  bq, bk = block_size
  nqb, nkb = seq_q // bq, seq_k // bk
  q_last = (np.arange(nqb) + 1) * bq - 1 + (seq_k - seq_q)
  k_first = np.arange(nkb) * bk
  visible = (k_first[None, :] <= q_last[:, None]) if causal else np.ones((nqb, nkb), bool)
  diagonal = np.clip(q_last // bk, 0, nkb - 1)
  block = np.arange(nkb)[None, :]
  forced = visible & (block <= diagonal[:, None]) & (block > diagonal[:, None] - num_local_blocks)
  wanted = np.ceil(density * visible.sum(axis=1) - 1e-9).astype(int)
  budget = np.minimum(np.maximum(forced.sum(axis=1), wanted), visible.sum(axis=1))
  return visible, forced, budget
