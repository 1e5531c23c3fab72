"""BlockMask: which key blocks each query block attends to, as compact per-row lists.

The layout of FlexAttention's ``BlockMask``: for query block ``i`` of mask head ``h`` the kept key
blocks are ``kv_block_indices[h, i, :kv_block_counts[h, i]]`` in ascending order; entries past
the count are padding (they repeat the last kept index, or 0 in a row that keeps nothing), so a
kernel that loops over ``kv_block_counts`` visits only kept blocks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _check_block_size(block_size: Any) -> tuple[int, int]:
  if (not isinstance(block_size, (tuple, list)) or len(block_size) != 2
      or not all(isinstance(b, (int, np.integer)) and b > 0 for b in block_size)):
    raise ValueError(f"block_size must be two positive ints (bq, bk), got {block_size!r}")
  return int(block_size[0]), int(block_size[1])


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class BlockMask:
  """A block-sparse attention mask: per (head, query block) ascending lists of kept key blocks.

  Attributes:
    kv_block_indices: int32 [Hm, nqb, max_kept], kept key-block indices, ascending; padding past
      the count.
    kv_block_counts: int32 [Hm, nqb], the number of kept key blocks of each query block.
    block_size: ``(bq, bk)``, query and key block lengths (static).
    num_kv_blocks: ``nkb``, the number of key blocks, ``ceil(Sk / bk)`` (static).

  ``Hm`` is 1 (one mask for every head) or the number of query heads; ``nqb = ceil(Sq / bq)``.
  """

  kv_block_indices: jax.Array
  kv_block_counts: jax.Array
  block_size: tuple[int, int]
  num_kv_blocks: int

  def tree_flatten(self):
    return (self.kv_block_indices, self.kv_block_counts), (self.block_size, self.num_kv_blocks)

  @classmethod
  def tree_unflatten(cls, aux, children):
    return cls(*children, *aux)

  @property
  def num_heads(self) -> int:
    """``Hm``: 1 (shared by all heads) or one mask per query head."""
    return self.kv_block_counts.shape[0]

  @property
  def num_q_blocks(self) -> int:
    return self.kv_block_counts.shape[1]

  @property
  def shape(self) -> tuple[int, int, int]:
    """``(Hm, nqb, nkb)``, the shape of the dense block mask."""
    return (self.num_heads, self.num_q_blocks, self.num_kv_blocks)

  @property
  def density(self) -> jax.Array:
    """Fraction of the ``Hm * nqb * nkb`` blocks that are kept (float32 scalar)."""
    total = max(1, math.prod(self.shape))
    return jnp.sum(self.kv_block_counts, dtype=jnp.float32) / total

  def todense(self) -> jax.Array:
    """The dense block mask: bool [Hm, nqb, nkb]."""
    arrays = (self.kv_block_indices, self.kv_block_counts)
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
      return dense_block_mask(*arrays, self.num_kv_blocks)
    return jnp.asarray(dense_block_mask(*(np.asarray(a) for a in arrays), self.num_kv_blocks, np))

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def from_dense(cls, mask: Any, *, block_size: tuple[int, int],
                 max_kept: int | None = None) -> "BlockMask":
    """Builds the compact lists from a dense block mask.

    Args:
      mask: bool [Hm, nqb, nkb] (or [nqb, nkb], taken as Hm = 1); True keeps a block.
      block_size: ``(bq, bk)``.
      max_kept: length of each list. Required when ``mask`` is traced (under ``jit``); rows
        keeping more blocks than this are truncated to their first ``max_kept`` there. From host
        data it defaults to the largest row count (at least 1), and a smaller value raises.
        Keep it tight: on Hopper the attention kernel sizes its launch from it (query tiles a
        program, ``block_sparse_attention_mgpu.default_config``).

    Returns:
      a ``BlockMask`` with int32 indices.
    """
    block_size = _check_block_size(block_size)
    if not isinstance(mask, jax.core.Tracer):
      mask = np.asarray(mask)
    if mask.ndim == 2:
      mask = mask[None]
    if mask.ndim != 3:
      raise ValueError(f"mask must be a bool [Hm, nqb, nkb] block mask, got shape {mask.shape}")
    if mask.dtype != jnp.bool_:
      raise TypeError(f"mask must be bool, got {mask.dtype}")
    num_kv_blocks = mask.shape[2]
    traced = isinstance(mask, jax.core.Tracer)
    if max_kept is None:
      if traced:
        raise ValueError("max_kept must be given when mask is traced (inside jit)")
      max_kept = max(1, int(np.asarray(mask).sum(axis=-1).max(initial=0)))
    elif not traced:
      needed = int(np.asarray(mask).sum(axis=-1).max(initial=0))
      if needed > max_kept:
        raise ValueError(f"max_kept={max_kept} is too small: a query block keeps {needed} blocks")
    if not isinstance(max_kept, (int, np.integer)) or max_kept < 1:
      raise ValueError(f"max_kept must be a positive int, got {max_kept!r}")
    if traced:
      indices, counts = _compact(mask, int(max_kept), jnp)
    else:
      # Host data: NumPy, so that building masks of many shapes compiles nothing.
      indices, counts = (jnp.asarray(a) for a in _compact(np.asarray(mask), int(max_kept), np))
    return cls(indices, counts, block_size, num_kv_blocks)

  @classmethod
  def full(cls, seq_len_q: int, seq_len_k: int, *, block_size: tuple[int, int]) -> "BlockMask":
    """Every block kept (dense attention)."""
    return cls._from_rule(seq_len_q, seq_len_k, block_size, lambda *_: True)

  @classmethod
  def causal(cls, seq_len_q: int, seq_len_k: int, *, block_size: tuple[int, int]) -> "BlockMask":
    """The blocks holding a visible pair under bottom-right causal masking.

    Key position j is visible to query position i iff ``j <= i + (Sk - Sq)``.
    """
    return cls._from_rule(seq_len_q, seq_len_k, block_size, _causal_rule)

  @classmethod
  def local(cls, seq_len_q: int, seq_len_k: int, *, block_size: tuple[int, int], window: int,
            causal: bool = True) -> "BlockMask":
    """Sliding window of ``window`` tokens: blocks holding a pair with ``0 <= i' - j < window``.

    ``i' = i + (Sk - Sq)`` is the query position aligned to the end of the keys; with
    ``causal=False`` the window is symmetric, ``|i' - j| < window``.
    """
    return cls.from_dense(_local_blocks(seq_len_q, seq_len_k, block_size, window, causal),
                          block_size=block_size)

  @classmethod
  def local_global(cls, seq_len_q: int, seq_len_k: int, *, block_size: tuple[int, int],
                   window: int, num_global_blocks: int = 1, causal: bool = True) -> "BlockMask":
    """``local(window)`` plus the first ``num_global_blocks`` key blocks for every query block.

    Under ``causal`` the global blocks are kept only where they hold a visible key.
    """
    if not isinstance(num_global_blocks, (int, np.integer)) or num_global_blocks < 0:
      raise ValueError(f"num_global_blocks must be a non-negative int, got {num_global_blocks!r}")
    kept = _local_blocks(seq_len_q, seq_len_k, block_size, window, causal)
    is_global = np.arange(kept.shape[1]) < num_global_blocks
    if causal:
      is_global = is_global & _rule_blocks(seq_len_q, seq_len_k, block_size, _causal_rule)
    return cls.from_dense(kept | is_global, block_size=block_size)

  @classmethod
  def _from_rule(cls, seq_len_q, seq_len_k, block_size, rule) -> "BlockMask":
    return cls.from_dense(_rule_blocks(seq_len_q, seq_len_k, block_size, rule),
                          block_size=block_size)


def _causal_rule(q_first, q_last, k_first, k_last):
  return k_first <= q_last


def _local_blocks(seq_len_q, seq_len_k, block_size, window, causal) -> np.ndarray:
  if not isinstance(window, (int, np.integer)) or window < 1:
    raise ValueError(f"window must be a positive int (tokens), got {window!r}")
  ahead = 0 if causal else window - 1
  return _rule_blocks(seq_len_q, seq_len_k, block_size,
                      lambda q_first, q_last, k_first, k_last:
                      (k_first <= q_last + ahead) & (k_last > q_first - window))


def _rule_blocks(seq_len_q, seq_len_k, block_size, rule) -> np.ndarray:
  """bool [nqb, nkb]: ``rule(q_first, q_last, k_first, k_last)`` on every block's positions.

  Host NumPy (so masks built inside ``jit`` are constants); query positions are aligned to the
  end of the keys (shifted by ``Sk - Sq``).
  """
  bq, bk = _check_block_size(block_size)
  for name, value in (("seq_len_q", seq_len_q), ("seq_len_k", seq_len_k)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  offset = seq_len_k - seq_len_q
  q_first = np.arange(0, seq_len_q, bq)[:, None]
  q_last = np.minimum(q_first + bq, seq_len_q) - 1
  k_first = np.arange(0, seq_len_k, bk)[None, :]
  k_last = np.minimum(k_first + bk, seq_len_k) - 1
  kept = rule(q_first + offset, q_last + offset, k_first, k_last)
  return np.broadcast_to(np.asarray(kept, bool), (q_first.shape[0], k_first.shape[1]))


def _compact(mask, max_kept: int, xp) -> tuple[Any, Any]:
  """(indices int32 [Hm, nqb, max_kept], counts int32 [Hm, nqb]) of a bool [Hm, nqb, nkb] mask.

  ``xp`` is ``numpy`` (host data) or ``jax.numpy`` (traced data).
  """
  num_kv_blocks = mask.shape[2]
  counts = xp.minimum(xp.sum(mask, axis=-1, dtype=xp.int32), max_kept)
  # A stable sort of "not kept" puts the kept blocks first, in ascending order.
  order = xp.argsort(~mask, axis=-1, stable=True).astype(xp.int32)
  if order.shape[-1] < max_kept:
    order = xp.pad(order, ((0, 0), (0, 0), (0, max_kept - num_kv_blocks)))
  order = order[..., :max_kept]
  last_kept = xp.take_along_axis(order, xp.maximum(counts - 1, 0)[..., None], axis=-1)
  last_kept = xp.where(counts[..., None] > 0, last_kept, 0)
  slots = xp.arange(max_kept, dtype=xp.int32)
  indices = xp.where(slots < counts[..., None], order, last_kept)
  return indices.astype(xp.int32), counts.astype(xp.int32)


def dense_block_mask(kv_block_indices, kv_block_counts, num_kv_blocks: int, xp=jnp):
  """bool [Hm, nqb, nkb]: True where a block is among the first ``count`` listed ones.

  ``xp`` is ``jax.numpy`` (default, traceable) or ``numpy`` (host arrays).
  """
  slots = xp.arange(kv_block_indices.shape[-1])
  listed = slots < kv_block_counts[..., None]
  # Unlisted slots scatter past the last block, into a column that is dropped.
  targets = xp.where(listed, kv_block_indices, num_kv_blocks)
  heads, q_blocks, _ = kv_block_indices.shape
  index = (xp.arange(heads)[:, None, None], xp.arange(q_blocks)[None, :, None], targets)
  dense = xp.zeros((heads, q_blocks, num_kv_blocks + 1), bool)
  if xp is np:
    dense[index] = True
  else:
    dense = dense.at[index].set(True)
  return dense[..., :num_kv_blocks]
