"""Block-sparse flash attention (forward) in Pallas for the Triton GPU backend.

The block mask arrives as compact per-query-block lists of kept key blocks (as FlexAttention's
``BlockMask``): for query block ``i`` of mask head ``h`` the kept key blocks are
``kv_block_indices[h, i, :kv_block_counts[h, i]]``, ascending. Each program owns one tile of
``block_q`` query rows of one (batch, query head) and loops over the kept key blocks only, in
sub-tiles of ``block_k`` keys, with an online softmax in float32 (base 2, FlashAttention-2).
Programs launch last query tile first (under causal masks the longest), one tile across a group of
``AttentionConfig.head_group`` (batch, head) pairs before the next tile (``_launch_pair``).

Masking costs a compare and a select per score, so it is paid only where needed: per query tile,
the leading kept sub-tiles that are fully visible run without a mask, the rest of the visible
prefix (the causal diagonal, the ragged sequence end) with the elementwise mask, and kept sub-tiles
past that are skipped; both are prefixes because the kept lists are ascending. This splits the
kept blocks into FlexAttention's "full" and "partial" blocks without storing two lists. Each
program counts its two prefixes from one vector load of its kept list (``_tile_prefixes``), so a
call launches no kernel besides the attention kernel; ``tile_bounds`` computes the same counts in
XLA for a caller that prefers to pass them in (``kernel_fn(..., bounds=...)``).
Launch configs come from ``default_config`` and a ``ConfigTable`` (per head dim, kept fraction and
causal or not).

Decoding (a few queries against a long cache) runs the same kernel with ``num_splits > 1``:
split-K, each program takes one contiguous share of the kept sub-tiles and writes an unnormalised
partial result with its running max and sum; ``_combine_splits`` merges them in plain JAX.

Grouped-query heads: query head ``h`` reads key/value head ``h // (Hq // Hkv)`` through the
BlockSpec index map, so K and V are never copied. Triton loads are raw pointer arithmetic (no
bounds checks), so every ragged edge (query rows past ``Sq``, keys past ``Sk``) is a masked load or
store: BlockSpecs span whole sequences and the kernel slices them with ``pl.ds``.

References: Dao, "FlashAttention-2" (2023); Dong et al., "Flex Attention" (2024); Tang et al.,
"Quest" (2024) for per-head kept-block lists in decoding.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels import _common

LOG2_E = math.log2(math.e)
KERNEL_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16), jnp.dtype(jnp.float32))
MIN_DOT_TILE = 16  # Triton's tl.dot needs at least 16 in every dimension.
MAX_DECODE_QUERIES = 16


def _is_power_of_two(n: int) -> bool:
  return n > 0 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
  """Tile sizes and launch parameters of one kernel launch.

  Attributes:
    block_q: query rows per program (power of two >= 16); divides the mask's ``bq``, or covers
      all queries when there is one query block.
    block_k: keys per inner step (power of two >= 16) dividing the mask's ``bk``.
    num_splits: programs sharing one query tile's kept blocks (split-K); 1 for prefill.
    num_warps, num_stages: Triton launch parameters.
    head_group: launch order. Programs are launched query tile by query tile (last tile first)
      over groups of ``head_group`` (batch, head) pairs, group after group: 1 runs each head's
      tiles in turn (few heads' K/V live in L2 at once); larger groups start the longest causal
      tiles of more heads first (a shorter tail), at the cost of more K/V in L2. Reduced to
      ``gcd(head_group, B * Hq)``.
  """

  block_q: int
  block_k: int
  num_splits: int = 1
  num_warps: int = 4
  num_stages: int = 2
  head_group: int = 1

  def __post_init__(self):
    for name in ("block_q", "block_k"):
      value = getattr(self, name)
      if not _is_power_of_two(value) or value < MIN_DOT_TILE:
        raise ValueError(f"AttentionConfig.{name} must be a power of two >= {MIN_DOT_TILE}, "
                         f"got {value}")
    for name in ("num_splits", "head_group"):
      if getattr(self, name) < 1:
        raise ValueError(f"AttentionConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class ConfigTable:
  """What ``default_config`` picks from: prefill tiles per head-dim class and mask density, and
  the split-K target of decoding.

  Attributes:
    prefill_small_head, prefill_large_head: prefill configs for head dim <= 64 and > 64 (their
      ``block_q``/``block_k`` are capped by the mask's ``bq``/``bk``).
    sparse_small_head, sparse_large_head: used instead when at most ``sparse_below`` of the key
      blocks are kept (``max_kept / num_kv_blocks``, static); ``None`` keeps the dense entry.
    causal_small_head, causal_large_head: used for causal prefill instead of the two above
      (short programs beside long ones, a masked diagonal); ``None`` keeps the dense/sparse pick.
    sparse_below: the kept fraction at or below which the sparse entries apply.
    decode_programs: programs a split-K launch aims for (batch x heads x splits).
    decode_stages: Triton pipeline stages of the decoding launch.
  """

  prefill_small_head: AttentionConfig
  prefill_large_head: AttentionConfig
  sparse_small_head: AttentionConfig | None = None
  sparse_large_head: AttentionConfig | None = None
  causal_small_head: AttentionConfig | None = None
  causal_large_head: AttentionConfig | None = None
  sparse_below: float = 0.15
  decode_programs: int = 256
  decode_stages: int = 3

  def __post_init__(self):
    if not 0.0 <= self.sparse_below <= 1.0:
      raise ValueError(f"ConfigTable.sparse_below must be in [0, 1], got {self.sparse_below}")
    if self.decode_programs < 1:
      raise ValueError(f"ConfigTable.decode_programs must be >= 1, got {self.decode_programs}")


# Tuned on an H100 in round 2 (2026-11-25, bf16, batch 4, 16 heads, seq 8192, 128 x 128 mask
# blocks; the config sweep attention_bench.py ran before commit ecef98b):
# head dim 64: 128x128 w4 s3 3318 us at density 1, 393/240 us at 0.1/0.05 (128x64 w4 s3: 3397,
# 64x64 w4 s3: 3353, 128x64 w4 s4: 3402, 128x128 w8 s3: 3875; the first three within 2.5%, and no
# candidate more than 3% faster at low density, so no sparse entry); head dim 128: 128x128 w8 s3
# 5488 / 671 / 425 us (128x64 w8 s2: 6467, 64x64 w4 s3: 6351, 64x128 w4 s3: 6927). Decoding:
# 256 split-K programs (about two waves on 132 SMs) beat 1024 at every case (73.8 vs 81.3 us at
# 1 query, density 0.1, KV 32k).
# Round 4 (2026-11-25, same shapes, experiments/results/h100-2026-11-25-attention-sweep/): the
# sweep's proposed table, adopted. Head dim 64: 64x128 w4 s2 3090 us dense, 371 us at density 0.1
# (the round-2 entry 128x128 w4 s3: 3336 / 431 in the same run); causal 128x128 w4 s3 with
# head_group 8: 1893 us (2054 with head_group 1).
# Head dim 128: 128x64 w4 s2 4946 / 679 us (128x128 w8 s3: 5206 / 719); causal keeps 128x128 w8
# s3 (2976 us, the best causal entry). Differences of a few percent: one run each.
DEFAULT_TABLE = ConfigTable(
    prefill_small_head=AttentionConfig(block_q=64, block_k=128, num_warps=4, num_stages=2),
    prefill_large_head=AttentionConfig(block_q=128, block_k=64, num_warps=4, num_stages=2),
    causal_small_head=AttentionConfig(block_q=128, block_k=128, num_warps=4, num_stages=3,
                                      head_group=8),
    causal_large_head=AttentionConfig(block_q=128, block_k=128, num_warps=8, num_stages=3),
    sparse_below=0.15,
    decode_programs=256,
    decode_stages=3)


# Left to Triton beside the K/V ring (layout changes, reductions) when a config is fitted.
SHARED_MEMORY_MARGIN = 16 * 1024


def kv_ring_bytes(config: AttentionConfig, head_dim: int, itemsize: int) -> int:
  """Shared memory of the K/V tiles Triton's pipeliner keeps in flight: ``num_stages`` buffers
  of a [block_k, head_dim] K and V tile each (what a launch asked for on an H100: float32,
  head dim 128, block_k 128, three stages: 393216 bytes)."""
  return config.num_stages * 2 * config.block_k * head_dim * itemsize


def fit_shared_memory(config: AttentionConfig, *, head_dim: int, itemsize: int,
                      limit: int) -> AttentionConfig:
  """``config`` with fewer pipeline stages (down to 2), then halved ``block_k`` (down to 16),
  until its K/V ring fits ``limit`` less ``SHARED_MEMORY_MARGIN``: the tables are tuned for
  16-bit inputs on an H100, and the same tiles in float32, or on a GPU with less shared memory,
  would fail to launch ("Shared memory size limit exceeded"). ``block_q`` is kept (the query
  tiles, and so ``tile_bounds``' shape, do not change).

  Raises:
    ValueError: ``itemsize`` is not 1, 2, 4 or 8, or even two stages of 16-key tiles do not fit
      ``limit`` (naming both).
  """
  if itemsize not in (1, 2, 4, 8):
    raise ValueError(f"itemsize must be a dtype's size in bytes (1, 2, 4 or 8), got {itemsize}")
  budget = limit - SHARED_MEMORY_MARGIN
  while kv_ring_bytes(config, head_dim, itemsize) > budget:
    if config.num_stages > 2:
      config = dataclasses.replace(config, num_stages=config.num_stages - 1)
    elif config.block_k > MIN_DOT_TILE:
      config = dataclasses.replace(config, block_k=config.block_k // 2)
    else:
      raise ValueError(
          f"shared_memory={limit} bytes is too small for head dim {head_dim} at {itemsize} bytes "
          f"a value: two stages of 16-key K/V tiles need "
          f"{kv_ring_bytes(config, head_dim, itemsize) + SHARED_MEMORY_MARGIN}")
  return config


def default_config(*, batch: int, num_heads: int, q_len: int, head_dim: int,
                   block_size: tuple[int, int], max_kept: int, num_kv_blocks: int | None = None,
                   causal: bool = False, table: ConfigTable = DEFAULT_TABLE, itemsize: int = 2,
                   shared_memory: int | None = None) -> AttentionConfig:
  """The config used when none is given: ``table``'s prefill tiles per head dim (the causal
  entry under ``causal``, else the sparse one when the kept fraction ``max_kept / num_kv_blocks``
  is small and ``num_kv_blocks`` is given), split-K for decoding; then fitted to
  ``shared_memory`` bytes (default ``_common.shared_memory_limit()``) for inputs of ``itemsize``
  bytes (``fit_shared_memory``)."""
  limit = _common.shared_memory_limit() if shared_memory is None else shared_memory
  return fit_shared_memory(
      _table_config(batch=batch, num_heads=num_heads, q_len=q_len, head_dim=head_dim,
                    block_size=block_size, max_kept=max_kept, num_kv_blocks=num_kv_blocks,
                    causal=causal, table=table),
      head_dim=head_dim, itemsize=itemsize, limit=limit)


def _table_config(*, batch: int, num_heads: int, q_len: int, head_dim: int,
                  block_size: tuple[int, int], max_kept: int, num_kv_blocks: int | None,
                  causal: bool, table: ConfigTable) -> AttentionConfig:
  """``default_config``'s pick from ``table``, before it is fitted to the shared memory."""
  bq, bk = block_size
  if q_len <= MAX_DECODE_QUERIES and q_len <= bq:
    block_q = max(MIN_DOT_TILE, pl.next_power_of_2(q_len))
    block_k = min(bk, 128 if head_dim <= 64 else 64)
    tiles = max_kept * (bk // block_k)
    splits = max(1, min(tiles, pl.cdiv(table.decode_programs, batch * num_heads)))
    # Every split gets at least one tile of the longest list.
    splits = pl.cdiv(tiles, pl.cdiv(tiles, splits)) if tiles else 1
    return AttentionConfig(block_q, block_k, num_splits=splits, num_warps=4,
                           num_stages=table.decode_stages)
  small_head = head_dim <= 64
  config = table.prefill_small_head if small_head else table.prefill_large_head
  sparse = table.sparse_small_head if small_head else table.sparse_large_head
  causal_entry = table.causal_small_head if small_head else table.causal_large_head
  if causal and causal_entry is not None:
    config = causal_entry
  elif sparse is not None and num_kv_blocks and max_kept <= table.sparse_below * num_kv_blocks:
    config = sparse
  return dataclasses.replace(config, block_q=min(bq, config.block_q),
                             block_k=min(bk, config.block_k), num_splits=1)


def check_arguments(q, k, v, kv_block_indices, kv_block_counts, block_size) -> None:
  """Raises ValueError/TypeError naming the argument that breaks the kernel's contract."""
  if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
    raise ValueError(f"q, k, v must be 4-D [B, S, H, D], got shapes {q.shape}, {k.shape}, "
                     f"{v.shape}")
  batch, q_len, num_heads, head_dim = q.shape
  if k.shape != v.shape:
    raise ValueError(f"k and v must have the same shape, got {k.shape} and {v.shape}")
  if k.shape[0] != batch or k.shape[3] != head_dim:
    raise ValueError(f"k must be [B={batch}, Sk, Hkv, D={head_dim}], got {k.shape}")
  if num_heads % k.shape[2]:
    raise ValueError(f"q's heads ({num_heads}) must be a multiple of k's heads ({k.shape[2]})")
  if not (q.dtype == k.dtype == v.dtype) or jnp.dtype(q.dtype) not in KERNEL_DTYPES:
    raise TypeError(f"q, k, v must share one dtype of {[str(d) for d in KERNEL_DTYPES]}, got "
                    f"{q.dtype}, {k.dtype}, {v.dtype}")
  for name, array in (("q", q), ("k", k)):
    if math.prod(array.shape) >= 2**31:  # the lowering's element offsets are int32
      raise ValueError(f"{name} must have fewer than 2**31 elements, got shape {array.shape}")
  if not _is_power_of_two(head_dim) or not MIN_DOT_TILE <= head_dim <= 256:
    raise ValueError(f"head dim must be a power of two in [16, 256], got {head_dim}")
  bq, bk = block_size
  if not (_is_power_of_two(bq) and _is_power_of_two(bk) and bq >= MIN_DOT_TILE
          and bk >= MIN_DOT_TILE):
    raise ValueError(f"block_size must be two powers of two >= 16, got {block_size}")
  nqb = pl.cdiv(q_len, bq)
  if kv_block_indices.ndim != 3 or kv_block_indices.shape[1] != nqb:
    raise ValueError(f"kv_block_indices must be [Hm, ceil(Sq/bq)={nqb}, max_kept], got "
                     f"{kv_block_indices.shape}")
  if kv_block_indices.shape[2] < 1:
    # Both kernels read a tile's first entry before its count says whether it is used.
    raise ValueError(f"kv_block_indices' kept-list width (last dim) must be at least 1 (pad an "
                     f"empty mask's lists to one entry, as BlockMask does), got shape "
                     f"{kv_block_indices.shape}")
  if kv_block_indices.shape[0] not in (1, num_heads):
    raise ValueError(f"kv_block_indices' mask heads must be 1 or Hq={num_heads}, got "
                     f"{kv_block_indices.shape[0]}")
  if kv_block_counts.shape != kv_block_indices.shape[:2]:
    raise ValueError(f"kv_block_counts must be {kv_block_indices.shape[:2]}, got "
                     f"{kv_block_counts.shape}")
  for name, array in (("kv_block_indices", kv_block_indices),
                      ("kv_block_counts", kv_block_counts)):
    if array.dtype != jnp.int32:
      raise TypeError(f"{name} must be int32, got {array.dtype}")


def tile_bounds(kv_block_indices: jax.Array, kv_block_counts: jax.Array, *, q_len: int,
                kv_len: int, block_size: tuple[int, int], config: AttentionConfig,
                causal: bool) -> jax.Array:
  """Per query tile, the number of leading kept key sub-tiles that need no mask and that are
  visible at all: int32 [Hm, ceil(q_len / config.block_q), 2].

  ``kernel_fn`` counts these inside the kernel (``_tile_prefixes``) unless given them as
  ``kernel_fn(..., bounds=...)``; this XLA version is that option and the tests' oracle. It
  depends on the mask, the sequence lengths, ``causal`` and ``config.block_q``/``config.block_k``.
  """
  bq, bk = block_size
  subs = bk // config.block_k
  tile_start = jnp.arange(pl.cdiv(q_len, config.block_q), dtype=jnp.int32) * config.block_q
  mask_block = tile_start // bq
  indices = kv_block_indices[:, mask_block, :]  # [Hm, nqt, max_kept]
  counts = kv_block_counts[:, mask_block]  # [Hm, nqt]
  starts = (indices[..., None] * bk
            + jnp.arange(subs, dtype=jnp.int32) * config.block_k).reshape(*indices.shape[:2], -1)
  kept = jnp.arange(starts.shape[-1], dtype=jnp.int32) < (counts * subs)[..., None]
  full = kept & (starts + config.block_k <= kv_len)
  visible = kept & (starts < kv_len)
  if causal:
    offset = kv_len - q_len
    first_row = tile_start[None, :, None]
    last_row = jnp.minimum(tile_start + config.block_q, q_len)[None, :, None] - 1
    full &= starts + config.block_k - 1 <= first_row + offset
    visible &= starts <= last_row + offset
  return jnp.stack([full.sum(-1), visible.sum(-1)], axis=-1).astype(jnp.int32)


def _div(x, n: int):
  """``x // n`` for non-negative int ``x``: lax.div lowers to one Triton op (``//`` adds sign
  fix-ups), with ``n`` in ``x``'s dtype (a Python int is int64 under x64)."""
  return lax.div(x, jnp.asarray(n, x.dtype))


def _rem(x, n: int):
  """``x % n`` for non-negative int ``x`` (see ``_div``)."""
  return lax.rem(x, jnp.asarray(n, x.dtype))


def _tile_prefixes(indices_ref, counts_ref, mask_head, mask_block, *, first_row, last_row,
                   block_k, bk, causal, q_len, kv_len):
  """(full, visible) for one query tile, inside the kernel: how many leading kept sub-tiles of
  ``block_k`` keys need no mask, and how many hold a key visible to some row of the tile (int32
  scalars, ``tile_bounds`` for one tile). One vector load of the tile's kept list."""
  subs = bk // block_k
  count = counts_ref[mask_head, mask_block]
  if not causal and kv_len % bk == 0:  # every sub-tile of every kept block is fully visible
    return count * subs, count * subs
  max_kept = indices_ref.shape[-1]
  width = pl.next_power_of_2(max_kept)  # Triton tensors have power-of-two shapes
  slots = jnp.arange(width, dtype=jnp.int32)
  in_list = slots < max_kept if width > max_kept else None
  # An int32 array index: the masked load's discharge rule (interpret mode) rejects Python ints.
  row = (jnp.asarray(mask_head, jnp.int32), mask_block, pl.ds(0, width))
  block_starts = plgpu.load(indices_ref.at[row],
                            mask=in_list, other=None if in_list is None else 0) * bk
  # Keys before full_end are visible to every row of the tile; keys from visible_end on to none.
  full_end = visible_end = kv_len
  if causal:
    full_end = jnp.minimum(first_row + (kv_len - q_len) + 1, kv_len)
    visible_end = jnp.minimum(last_row + (kv_len - q_len) + 1, kv_len)
  full_subs = jnp.minimum(jnp.maximum(full_end - block_starts, 0) // block_k, subs)
  visible_subs = jnp.minimum((jnp.maximum(visible_end - block_starts, 0) + block_k - 1)
                             // block_k, subs)
  kept = slots < count
  return (jnp.where(kept, full_subs, 0).sum(dtype=jnp.int32),
          jnp.where(kept, visible_subs, 0).sum(dtype=jnp.int32))


def _launch_pair(member, group_index, head_group: int, num_heads: int):
  """(batch, head) of grid point (member, tile, group_index): the grid is
  ``(head_group, tiles * splits, B * Hq // head_group)`` and Triton launches its first axis
  fastest, so each query tile runs for a whole group of heads before the next tile."""
  pair = group_index * head_group + member
  return _div(pair, num_heads), _rem(pair, num_heads)


def _attention_kernel(indices_ref, counts_ref, q_ref, k_ref, v_ref, *refs, has_bounds, block_q,
                      block_k, block_size, num_splits, num_q_tiles, num_heads, head_group,
                      per_head_mask, causal, qk_scale, q_len, kv_len):
  """One (query tile x split, batch, head) program; see the module docstring and
  ``_launch_pair``. ``refs`` are the precomputed bounds (when ``has_bounds``) followed by the
  outputs."""
  bounds_ref, out_refs = (refs[0], refs[1:]) if has_bounds else (None, refs)
  bq, bk = block_size
  subs = bk // block_k
  program = pl.program_id(1)
  # Last query tile first: under causal masks it has the most kept blocks, and starting the
  # longest programs first shortens the tail of the launch.
  tile = num_q_tiles - 1 - _div(program, num_splits)
  split = _rem(program, num_splits)
  if per_head_mask:
    mask_head = _launch_pair(pl.program_id(0), pl.program_id(2), head_group, num_heads)[1]
  else:
    mask_head = 0
  row_start = tile * block_q
  mask_block = _div(row_start, bq)
  rows = row_start + jnp.arange(block_q, dtype=jnp.int32)
  head_dim = q_ref.shape[-1]
  dot_precision = lax.Precision.HIGHEST if q_ref.dtype == jnp.float32 else None

  # Masked loads and stores only where the last query tile is ragged.
  row_mask = (rows < q_len)[:, None] if q_len % block_q else None
  q = plgpu.load(q_ref.at[pl.ds(row_start, block_q), :], mask=row_mask,
                 other=None if row_mask is None else 0)
  ragged_keys = kv_len % block_k != 0

  def step(j, carry, masked):
    acc, row_max, row_sum = carry
    key_start = (indices_ref[mask_head, mask_block, _div(j, subs)] * bk
                 + _rem(j, subs) * block_k)
    keys = key_start + jnp.arange(block_k, dtype=jnp.int32)
    load_mask = (keys < kv_len)[:, None] if masked and ragged_keys else None
    other = 0 if load_mask is not None else None
    k = plgpu.load(k_ref.at[pl.ds(key_start, block_k), :], mask=load_mask, other=other)
    v = plgpu.load(v_ref.at[pl.ds(key_start, block_k), :], mask=load_mask, other=other)
    scores = plgpu.dot(q, k, trans_b=True, precision=dot_precision)  # [block_q, block_k]
    # A positive scale commutes with the row max, so it is applied inside exp2's argument, where
    # the multiply and the max subtraction fuse into one FMA per score (as Triton's tutorial
    # flash attention does); a non-positive scale is applied first.
    if qk_scale <= 0:
      scores = scores * qk_scale
    fused_scale = qk_scale if qk_scale > 0 else 1.0
    if masked:
      visible = (keys < kv_len)[None, :]
      if causal:
        visible = visible & (keys[None, :] <= rows[:, None] + (kv_len - q_len))
      scores = jnp.where(visible, scores, -jnp.inf)
    new_max = jnp.maximum(row_max, scores.max(axis=-1) * fused_scale)
    # A row that has seen no visible key keeps max -inf; subtracting 0 instead keeps exp2 at 0.
    safe_max = jnp.where(new_max == -jnp.inf, 0.0, new_max) if masked else new_max
    correction = jnp.exp2(row_max - safe_max)
    probs = jnp.exp2(scores * fused_scale - safe_max[:, None])
    row_sum = correction * row_sum + probs.sum(axis=-1)
    acc = correction[:, None] * acc + plgpu.dot(probs.astype(v.dtype), v, precision=dot_precision)
    return acc, new_max, row_sum

  if has_bounds:
    num_full = bounds_ref[mask_head, tile, 0]
    num_visible = bounds_ref[mask_head, tile, 1]
  else:
    num_full, num_visible = _tile_prefixes(
        indices_ref, counts_ref, mask_head, mask_block, first_row=row_start,
        last_row=jnp.minimum(row_start + block_q, q_len) - 1, block_k=block_k, bk=bk,
        causal=causal, q_len=q_len, kv_len=kv_len)
  # Split-K shares this tile's visible sub-tiles evenly (not the padded list length), so heads
  # with short lists and padded index arrays keep every split busy.
  chunk = _div(num_visible + num_splits - 1, num_splits)
  lo = split * chunk
  hi = lo + chunk
  carry = (jnp.zeros((block_q, head_dim), jnp.float32),
           jnp.full((block_q,), -jnp.inf, jnp.float32), jnp.zeros((block_q,), jnp.float32))
  carry = lax.fori_loop(lo, jnp.minimum(hi, num_full),
                        functools.partial(step, masked=False), carry)
  carry = lax.fori_loop(jnp.maximum(lo, num_full), jnp.minimum(hi, num_visible),
                        functools.partial(step, masked=True), carry)
  acc, row_max, row_sum = carry

  if num_splits == 1:
    (o_ref,) = out_refs
    out = acc / jnp.where(row_sum == 0, 1.0, row_sum)[:, None]  # no visible key -> 0
    # The default int type: interpret mode's store rejects int32 beside the slice's int64 (x64).
    store_start = row_start.astype(jax.dtypes.canonicalize_dtype(jnp.int_))
    plgpu.store(o_ref.at[pl.ds(store_start, block_q), :], out.astype(o_ref.dtype), mask=row_mask)
  else:
    acc_ref, max_ref, sum_ref = out_refs
    acc_ref[...] = acc
    max_ref[...] = row_max
    sum_ref[...] = row_sum


def _combine_splits(acc, row_max, row_sum, *, num_splits, q_len, dtype):
  """Merges split-K partials [B, H, tiles*splits, block_q(, D)] into [B, Sq, H, D]."""
  batch, heads, programs, block_q, head_dim = acc.shape
  tiles = programs // num_splits
  # One query tile (decoding): drop its padding rows before merging, not after.
  rows = q_len if tiles == 1 else block_q
  acc = acc.reshape(batch, heads, tiles, num_splits, block_q, head_dim)[..., :rows, :]
  row_max = row_max.reshape(batch, heads, tiles, num_splits, block_q)[..., :rows]
  row_sum = row_sum.reshape(batch, heads, tiles, num_splits, block_q)[..., :rows]
  total_max = row_max.max(axis=3, keepdims=True)
  total_max = jnp.where(total_max == -jnp.inf, 0.0, total_max)
  weight = jnp.exp2(row_max - total_max)
  total_sum = (weight * row_sum).sum(axis=3)
  out = (weight[..., None] * acc).sum(axis=3)
  out = out / jnp.where(total_sum == 0, 1.0, total_sum)[..., None]
  out = out.reshape(batch, heads, tiles * rows, head_dim)[:, :, :q_len]
  return out.transpose(0, 2, 1, 3).astype(dtype)


@functools.partial(jax.jit, static_argnames=("block_size", "causal", "scale", "config",
                                             "interpret"))
def kernel_fn(q: jax.Array, k: jax.Array, v: jax.Array, kv_block_indices: jax.Array,
              kv_block_counts: jax.Array, *, block_size: tuple[int, int], causal: bool = False,
              scale: float | None = None, config: AttentionConfig | None = None,
              bounds: jax.Array | None = None, interpret: bool = False) -> jax.Array:
  """Block-sparse attention forward.

  Args:
    q: [B, Sq, Hq, D] bfloat16, float16 or float32 (D a power of two in [16, 256]).
    k, v: [B, Sk, Hkv, D], q's dtype; Hq a multiple of Hkv (query head h reads kv head
      h // (Hq // Hkv)).
    kv_block_indices: int32 [Hm, ceil(Sq/bq), max_kept], Hm 1 or Hq: ascending kept key blocks
      per query block; entries past the count are ignored.
    kv_block_counts: int32 [Hm, ceil(Sq/bq)].
    block_size: (bq, bk) of the mask, powers of two >= 16.
    causal: key j visible to query i only if j <= i + Sk - Sq (bottom-right aligned).
    scale: score scale, default 1/sqrt(D).
    config: tiles and launch parameters; default ``default_config(...)`` (the kept fraction
      taken as ``max_kept / ceil(Sk/bk)``; fitted to the devices' shared memory for q's dtype).
    bounds: ``tile_bounds(...)`` of this mask, lengths, ``causal`` and config; default: each
      program counts its own from its kept list.
    interpret: run in Pallas interpret mode (any platform).

  Returns:
    [B, Sq, Hq, D] in q's dtype; a query row with no visible key is 0.
  """
  check_arguments(q, k, v, kv_block_indices, kv_block_counts, block_size)
  batch, q_len, num_heads, head_dim = q.shape
  kv_len, kv_heads = k.shape[1], k.shape[2]
  bq, bk = block_size
  if config is None:
    config = default_config(batch=batch, num_heads=num_heads, q_len=q_len, head_dim=head_dim,
                            block_size=block_size, max_kept=kv_block_indices.shape[-1],
                            num_kv_blocks=pl.cdiv(kv_len, bk), causal=causal,
                            itemsize=jnp.dtype(q.dtype).itemsize)
  q_tiles = pl.cdiv(q_len, config.block_q)
  if bk % config.block_k or not (bq % config.block_q == 0 or q_tiles == 1):
    raise ValueError(f"config {config} does not tile block_size {block_size}: block_k must "
                     f"divide bk, block_q divide bq (or cover all {q_len} queries)")
  scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
  expected = (kv_block_indices.shape[0], q_tiles, 2)
  if bounds is not None and (bounds.shape != expected or bounds.dtype != jnp.int32):
    raise ValueError(f"bounds must be int32 {expected} (tile_bounds of this mask and config "
                     f"{config}), got {bounds.dtype} {bounds.shape}")
  group = num_heads // kv_heads
  splits = config.num_splits
  head_group = math.gcd(config.head_group, batch * num_heads)
  grid = (head_group, q_tiles * splits, batch * num_heads // head_group)

  def pair(g, r):
    return _launch_pair(g, r, head_group, num_heads)

  def rows_of_head(g, p, r):  # q and o: [B, S, H, D] blocks of one head's whole sequence
    b, h = pair(g, r)
    return b, 0, h, 0

  def rows_of_kv_head(g, p, r):
    b, h = pair(g, r)
    return b, 0, _div(h, group), 0

  def partial_block(g, p, r):  # split-K partials [B, H, tiles * splits, block_q(, D)]
    return (*pair(g, r), p, 0)

  def whole(array):
    return pl.BlockSpec(array.shape, lambda *_: (0,) * array.ndim)

  extra = () if bounds is None else (bounds,)
  in_specs = [whole(kv_block_indices), whole(kv_block_counts),
              pl.BlockSpec((None, q_len, None, head_dim), rows_of_head),
              pl.BlockSpec((None, kv_len, None, head_dim), rows_of_kv_head),
              pl.BlockSpec((None, kv_len, None, head_dim), rows_of_kv_head),
              *map(whole, extra)]
  if splits == 1:
    out_shape = jax.ShapeDtypeStruct(q.shape, q.dtype)
    out_specs = pl.BlockSpec((None, q_len, None, head_dim), rows_of_head)
  else:
    partial_shape = (batch, num_heads, q_tiles * splits, config.block_q)
    out_shape = (jax.ShapeDtypeStruct((*partial_shape, head_dim), jnp.float32),
                 jax.ShapeDtypeStruct(partial_shape, jnp.float32),
                 jax.ShapeDtypeStruct(partial_shape, jnp.float32))
    out_specs = (pl.BlockSpec((None, None, None, config.block_q, head_dim),
                              lambda *grid_point: (*partial_block(*grid_point), 0)),
                 pl.BlockSpec((None, None, None, config.block_q), partial_block),
                 pl.BlockSpec((None, None, None, config.block_q), partial_block))
  kernel = functools.partial(
      _attention_kernel, has_bounds=bounds is not None, block_q=config.block_q,
      block_k=config.block_k, block_size=block_size,
      num_splits=splits, num_q_tiles=q_tiles, num_heads=num_heads, head_group=head_group,
      per_head_mask=kv_block_indices.shape[0] > 1,
      causal=causal, qk_scale=scale * LOG2_E, q_len=q_len, kv_len=kv_len)
  out = pl.pallas_call(
      kernel, grid=grid, in_specs=in_specs, out_specs=out_specs, out_shape=out_shape,
      compiler_params=plgpu.CompilerParams(num_warps=config.num_warps,
                                           num_stages=config.num_stages),
      interpret=interpret, name="block_sparse_attention",
  )(kv_block_indices, kv_block_counts, q, k, v, *extra)
  if splits == 1:
    return out
  return _combine_splits(*out, num_splits=splits, q_len=q_len, dtype=q.dtype)


def dense_block_mask(kv_block_indices: jax.Array, kv_block_counts: jax.Array,
                     num_kv_blocks: int) -> jax.Array:
  """Boolean [Hm, nqb, nkb] block mask from the compact lists (padding entries dropped)."""
  max_kept = kv_block_indices.shape[-1]
  kept = jnp.arange(max_kept) < kv_block_counts[..., None]
  one_hot = jax.nn.one_hot(kv_block_indices, num_kv_blocks, dtype=jnp.int32)
  return (one_hot * kept[..., None]).sum(axis=-2) > 0


def reference_fn(q: jax.Array, k: jax.Array, v: jax.Array, kv_block_indices: jax.Array,
                 kv_block_counts: jax.Array, *, block_size: tuple[int, int],
                 causal: bool = False, scale: float | None = None) -> jax.Array:
  """Dense attention with the block mask applied, computed in ``promote(q.dtype, float32)``.

  Same arguments and result as ``kernel_fn`` (any float dtype, any head dim).
  """
  batch, q_len, num_heads, head_dim = q.shape
  kv_len, kv_heads = k.shape[1], k.shape[2]
  bq, bk = block_size
  dtype = jnp.promote_types(q.dtype, jnp.float32)
  scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
  blocks = dense_block_mask(kv_block_indices, kv_block_counts, pl.cdiv(kv_len, bk))
  visible = jnp.repeat(jnp.repeat(blocks, bq, axis=1), bk, axis=2)[:, :q_len, :kv_len]
  if causal:
    visible &= (jnp.arange(kv_len)[None, :] <= jnp.arange(q_len)[:, None] + kv_len - q_len)
  group = num_heads // kv_heads
  k = jnp.repeat(k.astype(dtype), group, axis=2)
  v = jnp.repeat(v.astype(dtype), group, axis=2)
  scores = jnp.einsum("bqhd,bkhd->bhqk", q.astype(dtype), k) * scale
  scores = jnp.where(visible[None], scores, -jnp.inf)
  row_max = scores.max(axis=-1, keepdims=True)
  probs = jnp.exp(scores - jnp.where(row_max == -jnp.inf, 0.0, row_max))
  row_sum = probs.sum(axis=-1, keepdims=True)
  probs = probs / jnp.where(row_sum == 0, 1.0, row_sum)
  return jnp.einsum("bhqk,bkhd->bqhd", probs, v).astype(q.dtype)
