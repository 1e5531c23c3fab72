"""Block-sparse flash attention (forward) in Pallas for the Mosaic GPU backend (Hopper).

A port of JAX's FlashAttention-3 kernel (``jax.experimental.pallas.ops.gpu.attention_mgpu``) to
the kept-block lists of ``block_sparse_attention`` (the Triton kernel, same contract): for query
block ``i`` of mask head ``h`` the kept key blocks are ``kv_block_indices[h, i, :count]`` with
``count = kv_block_counts[h, i]``, ascending. Each program owns ``2 * block_q`` query rows of one
(batch, query head) (or ``tiles_per_program`` such tiles in turn) and runs three warpgroups:
two compute warpgroups (``block_q`` rows each, wgmma from shared memory, online softmax in
float32, base 2) and one memory warpgroup issuing TMA copies of each tile's Q and of K and V
into ``max_concurrent_steps`` shared-memory slots, each slot released by the compute warpgroups
through barriers. Both loops run over the kept key tiles only: step ``s``
reads ``block_kv`` keys from
``kv_block_indices[h, i, s // subs] * bk + (s % subs) * block_kv`` (``subs = bk // block_kv``),
a scalar load from the index table in global memory (one row per program, L1-resident after the
first load), so no kernel besides the attention kernel runs per call.

Causal masks (bottom-right aligned, key ``j`` visible to query ``i`` iff ``j <= i + Sk - Sq``)
split each warpgroup's kept tiles into a prefix that needs no mask, then tiles masked elementwise
(the diagonal), then tiles it skips; both prefixes are found by a binary search of the ascending
list (``_count_steps``). A warpgroup that finishes before its neighbour keeps releasing the
neighbour's tiles (as attention_mgpu's causal epilogue) so the memory warpgroup never waits.
Unlike attention_mgpu, every thread that waits on a barrier observes all of its phases (the
early warpgroup also waits for the tiles it releases, the memory warpgroup for the last
releases): the Mosaic GPU interpreter checks this, and on the GPU it costs no step.

Grouped-query heads: query head ``h`` reads key/value head ``h // (Hq // Hkv)`` by TMA
coordinates, never copying K or V. A query row with no visible key outputs 0.

Restrictions (``check_arguments``; ``supports`` says which one a call breaks, so a caller can
fall back to the Triton kernel): float16/bfloat16, head dim 64 or 128, ``Sq`` a multiple of
``2 * block_q``, ``Sk`` a multiple of the mask's ``bk``, ``bq`` a multiple of ``2 * block_q``,
``bk`` a multiple of ``block_kv``, and the shared-memory tiles within 227 KiB.

References: Shah et al., "FlashAttention-3" (2024); Dao, "FlashAttention-2" (2023).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels import _common, block_sparse_attention

reference_fn = block_sparse_attention.reference_fn
dense_block_mask = block_sparse_attention.dense_block_mask

LOG2_E = math.log2(math.e)
KERNEL_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
HEAD_DIMS = (64, 128)
COMPUTE_WARPGROUPS = 2
SMEM_BYTES = _common.HOPPER_SHARED_MEMORY_BYTES  # the most a Hopper block may use
# Register split of attention_mgpu: the compute warpgroups hold the accumulators.
COMPUTE_REGISTERS, MEMORY_REGISTERS = 232, 40


@dataclasses.dataclass(frozen=True)
class MgpuAttentionConfig:
  """Tile sizes of one launch.

  Attributes:
    block_q: query rows per compute warpgroup (multiple of 64); a program covers ``2 * block_q``
      rows, which must lie in one mask query block.
    block_kv: keys per step (multiple of 64) dividing the mask's ``bk``.
    max_concurrent_steps: shared-memory slots for K/V tiles in flight (>= 2).
    tiles_per_program: query tiles (of ``2 * block_q`` rows) one program runs one after the
      other, its K/V slots shared across them. With more than one, Q has two shared-memory
      buffers and O a buffer of its own: the memory warpgroup loads the next tile's Q (and its
      first K/V blocks) while the compute warpgroups work on the current tile, and a tile's O
      store is waited for only when the next tile's O is written. With few kept blocks per
      query tile (low density) a tile's fixed costs (Q load, O store) dominate; the Hopper
      block already fills the SM's registers, so they cannot overlap across blocks.

  A compute warpgroup holds ``block_q x block_kv`` float32 scores beside its ``block_q x D``
  accumulator in at most 232 registers a thread: ``block_q * block_kv`` above 64 * 128 spills.
  """

  block_q: int = 64
  block_kv: int = 128
  max_concurrent_steps: int = 2
  tiles_per_program: int = 1

  def __post_init__(self):
    for name in ("block_q", "block_kv"):
      value = getattr(self, name)
      if value <= 0 or value % 64:
        raise ValueError(f"MgpuAttentionConfig.{name} must be a positive multiple of 64, got "
                         f"{value}")
    if self.max_concurrent_steps < 2:
      raise ValueError("MgpuAttentionConfig.max_concurrent_steps must be >= 2, got "
                       f"{self.max_concurrent_steps}")
    if self.tiles_per_program < 1:
      raise ValueError("MgpuAttentionConfig.tiles_per_program must be >= 1, got "
                       f"{self.tiles_per_program}")

  @property
  def q_buffers(self) -> int:
    """Shared-memory Q tiles: two (the next tile's loading) with several tiles a program."""
    return 2 if self.tiles_per_program > 1 else 1

  @property
  def separate_output(self) -> bool:
    """O staged in a buffer of its own (several tiles a program), else in the tile's Q buffer
    once the last Q @ K^T has read it."""
    return self.tiles_per_program > 1

  def smem_bytes(self, head_dim: int, itemsize: int) -> int:
    """Shared memory of the Q/O tiles and the K/V slots."""
    q_o_tiles = self.q_buffers + int(self.separate_output)
    rows = (q_o_tiles * COMPUTE_WARPGROUPS * self.block_q
            + 2 * self.max_concurrent_steps * self.block_kv)
    return rows * head_dim * itemsize


# attention_mgpu's benchmark defaults (block_q 64, block_kv 128, 2 slots) at head dims 64 and
# 128; block_kv 64 where the mask's key blocks are 64 wide.
DEFAULT_CONFIGS = {64: MgpuAttentionConfig(64, 128, 2), 128: MgpuAttentionConfig(64, 128, 2)}
def default_config(*, head_dim: int, block_size: tuple[int, int], q_len: int | None = None,
                   max_kept: int | None = None, causal: bool = False) -> MgpuAttentionConfig:
  """``DEFAULT_CONFIGS[head_dim]`` with ``block_kv`` reduced to the mask's ``bk`` if smaller, and
  the query tiles a program chosen from what the shapes say about the work per tile.

  Args:
    head_dim, block_size: the call's head dim and mask blocks (bq, bk).
    q_len: query rows; None keeps one tile a program.
    max_kept: the kept-list width (``kv_block_indices.shape[-1]``): no tile has more kept blocks.
    causal: causal calls keep one tile a program.

  Tiles a program (H100, batch 4 x 16 heads x 8192, bf16, random masks of 3-64 kept blocks of
  64, one run, experiments/results/h100-2026-11-26-attention-qprefetch/; time / one tile):
  - causal: one (tiles of a program differ in length; 2 / 4 / 8 took 0.98-1.38x);
  - head dim 64 with at most 8 K/V steps a tile: eight (0.85x at density 0.05, 0.92x at 0.1);
  - otherwise two (0.90-1.01x; four and eight reached 1.13x at head dim 128).
  The count is lowered to the largest power of two dividing the query tiles.
  Raises ValueError for a negative ``q_len`` or a ``max_kept`` below 1."""
  if q_len is not None and (not isinstance(q_len, int) or q_len < 0):
    raise ValueError(f"q_len must be a non-negative int or None, got {q_len!r}")
  if max_kept is not None and (not isinstance(max_kept, int) or max_kept < 1):
    raise ValueError(f"max_kept must be a positive int (the kept-list width) or None, got "
                     f"{max_kept!r}")
  config = DEFAULT_CONFIGS.get(head_dim, DEFAULT_CONFIGS[128])
  block_kv = config.block_kv if block_size[1] % config.block_kv == 0 else 64
  config = dataclasses.replace(config, block_kv=block_kv)
  if q_len is None or causal:
    return config
  max_steps = None if max_kept is None else max_kept * (block_size[1] // block_kv)
  tiles = 8 if head_dim == 64 and max_steps is not None and max_steps <= 8 else 2
  query_tiles = q_len // (COMPUTE_WARPGROUPS * config.block_q)
  while tiles > 1 and (query_tiles == 0 or query_tiles % tiles):
    tiles //= 2
  return dataclasses.replace(config, tiles_per_program=tiles)


def check_arguments(q, k, v, kv_block_indices, kv_block_counts, block_size,
                    config: MgpuAttentionConfig) -> None:
  """The Triton kernel's contract (``block_sparse_attention.check_arguments``) plus this
  kernel's restrictions; raises ValueError/TypeError naming the argument."""
  block_sparse_attention.check_arguments(q, k, v, kv_block_indices, kv_block_counts, block_size)
  _, q_len, _, head_dim = q.shape
  kv_len = k.shape[1]
  bq, bk = block_size
  rows = COMPUTE_WARPGROUPS * config.block_q
  if jnp.dtype(q.dtype) not in KERNEL_DTYPES:
    raise TypeError(f"q, k, v must be float16 or bfloat16 for the Mosaic GPU kernel, got "
                    f"{q.dtype}")
  if head_dim not in HEAD_DIMS:
    raise ValueError(f"head dim must be one of {HEAD_DIMS} for the Mosaic GPU kernel, got "
                     f"{head_dim}")
  if q_len % rows:
    raise ValueError(f"q's sequence length must be a multiple of 2 * config.block_q = {rows}, "
                     f"got {q_len}")
  if (q_len // rows) % config.tiles_per_program:
    raise ValueError(f"q's {q_len // rows} query tiles of {rows} rows must be a multiple of "
                     f"config.tiles_per_program = {config.tiles_per_program}")
  if kv_len % bk:
    raise ValueError(f"k's sequence length must be a multiple of block_size[1] = {bk}, got "
                     f"{kv_len}")
  if bq % rows:
    raise ValueError(f"block_size[0] must be a multiple of 2 * config.block_q = {rows} (a "
                     f"program's rows in one mask block), got block_size {block_size}")
  if bk % config.block_kv:
    raise ValueError(f"block_size[1] must be a multiple of config.block_kv = {config.block_kv}, "
                     f"got block_size {block_size}")
  smem = config.smem_bytes(head_dim, jnp.dtype(q.dtype).itemsize)
  if smem > SMEM_BYTES:
    raise ValueError(f"config {config} needs {smem} bytes of shared memory at head dim "
                     f"{head_dim}, more than {SMEM_BYTES}")


def _causal_miscompiled() -> bool:
  """attention_mgpu refuses causal masks on CUDA runtimes 12.8.0 to 12.9.0 (a ptxas
  miscompilation); the same masking code runs here."""
  from jax._src.lib import cuda_versions
  if cuda_versions is None:
    return False
  try:
    version = cuda_versions.cuda_runtime_get_version()
  except Exception:  # noqa: BLE001  (no CUDA runtime loaded: nothing to guard)
    return False
  return 12080 <= version < 12091


def supports(q, k, v, kv_block_indices, kv_block_counts, *, block_size: tuple[int, int],
             causal: bool = False, config: MgpuAttentionConfig | None = None) -> bool | str:
  """True if ``kernel_fn`` accepts these arguments (arrays or ``jax.ShapeDtypeStruct``), else
  why not (fall back to ``block_sparse_attention.kernel_fn``)."""
  try:
    if config is None:
      config = default_config(head_dim=q.shape[-1], block_size=tuple(block_size),
                              q_len=q.shape[1], max_kept=kv_block_indices.shape[-1],
                              causal=causal)
    check_arguments(q, k, v, kv_block_indices, kv_block_counts, tuple(block_size), config)
  except (TypeError, ValueError) as error:
    return str(error)
  if causal and _causal_miscompiled():
    return "causal masks are miscompiled by ptxas on CUDA runtimes 12.8.0 to 12.9.0"
  return True


def _count_steps(key_start, num_steps, limit, *, max_steps: int):
  """How many of the first ``num_steps`` steps start at a key ``<= limit`` (int32 scalars):
  a binary search, ``key_start`` being increasing along the ascending kept list."""
  def halve(_, bounds):
    lo, hi = bounds
    mid = lax.div(lo + hi, jnp.int32(2))
    start = key_start(jnp.minimum(mid, max_steps - 1))  # in the list even when lo == hi
    searching = lo < hi
    return (jnp.where(searching & (start <= limit), mid + 1, lo),
            jnp.where(searching & (start > limit), mid, hi))
  lo, _ = lax.fori_loop(0, max(1, max_steps).bit_length(), halve, (jnp.int32(0), num_steps))
  return lo


def _attention_kernel(indices_ref, counts_ref, q_ref, k_ref, v_ref, out_ref, scoped, *,
                      config: MgpuAttentionConfig, block_size, heads_per_kv_head: int,
                      per_head_mask: bool, causal: bool, qk_scale: float, q_len: int,
                      kv_len: int, interpret: bool):
  """One program: ``tiles_per_program`` query tiles of ``2 * block_q`` rows of one (batch,
  query head), one after the other; see the module docstring. ``scoped``: shared-memory tiles
  and barriers from ``_entry``. K/V steps are numbered across the program's tiles, so a step's
  slot and barrier phases follow on from the previous tile's."""
  ((q_smem, o_smem, k_smem, v_smem), (k_barriers, v_barriers, q_barriers),
   (k_consumed, v_consumed, q_consumed), schedule) = scoped
  block_q, block_kv, slots = config.block_q, config.block_kv, config.max_concurrent_steps
  tiles_per_program = config.tiles_per_program
  bq, bk = block_size
  subs = bk // block_kv
  max_kept = indices_ref.shape[-1]
  head_dim = q_ref.shape[-1]
  dtype = q_ref.dtype
  rows = COMPUTE_WARPGROUPS * block_q
  batch = lax.axis_index("batch")
  q_head = lax.axis_index("heads")
  wg = lax.axis_index("wg")
  mask_head = q_head if per_head_mask else 0
  offset = kv_len - q_len

  def tile_start_of(t):
    """The first query row of the program's tile ``t``."""
    # Last query tile first: under causal masks it holds the longest programs, and starting
    # them first shortens the tail of the launch.
    return ((q_len // rows) - 1 - (lax.axis_index("q_seq") * tiles_per_program + t)) * rows

  def q_block_of(t):
    """The mask query block holding the program's tile ``t``."""
    return lax.div(tile_start_of(t), jnp.int32(bq))

  def next_tile(t):
    """The tile after the program's tile ``t`` (traced), or the last tile itself: its loads
    are issued a tile ahead, the last tile's unused."""
    return jnp.minimum(t + 1, tiles_per_program - 1)

  def count_of(t):
    """Tile ``t``'s kept-block count, a scalar load from global memory. A tile's count bounds
    its step loops, so the warpgroups load it a tile ahead (``prefetched_count``): loaded at the
    loop bound, its latency would open every tile."""
    return counts_ref[mask_head, q_block_of(t)]

  def prefetched_count(t, count):
    """The count of the tile after tile ``t`` (whose count is ``count``), issued now; ``count``
    itself with one tile a program."""
    return count if tiles_per_program == 1 else count_of(next_tile(t))

  def key_start_of(q_block):
    """``key_start(step)``: the first key of query block ``q_block``'s K/V step ``step`` (a
    scalar load of its kept-list entry from global memory)."""
    def key_start(step):
      if subs == 1:
        return indices_ref[mask_head, q_block, step] * bk
      return (indices_ref[mask_head, q_block, lax.div(step, jnp.int32(subs))] * bk
              + lax.rem(step, jnp.int32(subs)) * block_kv)
    return key_start

  def tile_of(t, count):
    """(first row, key_start, total steps, step counter, steps to run) of the program's tile
    ``t``, whose kept-block count is ``count``."""
    tile_start = tile_start_of(t)
    total_steps = count * subs
    key_start = key_start_of(q_block_of(t))
    count_steps = functools.partial(_count_steps, key_start, total_steps,
                                    max_steps=max_kept * subs)
    # Steps holding a key visible to some row of the tile (its last row sees the most).
    tile_steps = count_steps(tile_start + rows - 1 + offset) if causal else total_steps
    return tile_start, key_start, total_steps, count_steps, tile_steps

  def slot_of(step):
    if isinstance(step, int):  # a literal: Mosaic GPU lowers only traced operands of rem
      return step % slots
    return lax.rem(step, jnp.int32(slots))

  def schedule_barrier():
    plgpu.barrier_arrive(schedule)
    plgpu.barrier_wait(schedule)

  def q_buffer_of(t):
    """The Q buffer of the program's tile ``t`` (they alternate)."""
    if config.q_buffers == 1:
      return 0
    if isinstance(t, int):
      return t % 2
    return lax.rem(t.astype(jnp.int32), jnp.int32(2))  # the loop index may be int64

  @pl.when(wg < COMPUTE_WARPGROUPS)
  def _compute_wg():
    plgpu.set_max_registers(COMPUTE_REGISTERS, action="increase")

    def run_tile(t, carry):
      """Tile ``t``, whose first K/V step is the program's ``first_step`` and whose kept-block
      count is ``count``; returns the next tile's first step and count. Its Q comes from the
      memory warpgroup."""
      first_step, count = carry
      next_count = prefetched_count(t, count)
      tile_start, key_start, total_steps, count_steps, tile_steps = tile_of(t, count)
      row_start = tile_start + wg * block_q
      q_buffer = q_buffer_of(t)
      q_tile = q_smem.at[q_buffer].at[wg]
      # Counted while Q is on its way.
      if causal:
        num_steps = count_steps(row_start + block_q - 1 + offset)
        num_full = count_steps(row_start + offset - block_kv + 1)
      else:
        num_steps = num_full = total_steps
      plgpu.barrier_wait(q_barriers.at[q_buffer * COMPUTE_WARPGROUPS + wg])
      row_max = plgpu.layout_cast(jnp.full((block_q,), -jnp.inf, jnp.float32),
                                  plgpu.Layout.WGMMA.reduce(1))
      row_sum = plgpu.layout_cast(jnp.full((block_q,), 0, jnp.float32),
                                  plgpu.Layout.WGMMA.reduce(1))
      acc = plgpu.layout_cast(jnp.full((block_q, head_dim), 0, jnp.float32),
                              plgpu.Layout.WGMMA)

      @pl.when(num_steps > 0)
      def _():
        plgpu.barrier_wait(k_barriers.at[slot_of(first_step)])

      pl.when(wg == 1)(schedule_barrier)

      def step(kv_step, carry, masked: bool):
        acc, row_max, row_sum = carry
        slot = slot_of(first_step + kv_step)

        def compute_qk(acc_ref):
          plgpu.wgmma(acc_ref, q_tile, k_smem.at[slot].transpose((1, 0)))
          schedule_barrier()
          return acc_ref[...]
        scores = pl.run_scoped(compute_qk, plgpu.ACC((block_q, block_kv), jnp.float32))
        plgpu.barrier_arrive(k_consumed.at[slot])
        # A positive scale commutes with the row max, so it is applied inside exp2's argument
        # (one FMA per score); a non-positive one is applied first.
        if qk_scale <= 0:
          scores = scores * qk_scale
        fused_scale = qk_scale if qk_scale > 0 else 1.0
        if masked:
          row_ids = plgpu.broadcasted_iota(jnp.int32, (block_q, block_kv), 0,
                                           layout=plgpu.Layout.WGMMA)
          key_ids = plgpu.broadcasted_iota(jnp.int32, (block_q, block_kv), 1,
                                           layout=plgpu.Layout.WGMMA)
          visible = key_ids + key_start(kv_step) <= row_ids + (row_start + offset)
          scores = jnp.where(visible, scores, -jnp.inf)
        new_max = jnp.maximum(row_max, scores.max(axis=1) * fused_scale)
        # A row that has seen no visible key keeps max -inf; subtracting 0 keeps exp2 at 0.
        safe_max = jnp.where(new_max == -jnp.inf, 0.0, new_max) if masked else new_max
        correction = jnp.exp2(row_max - safe_max)
        probs = jnp.exp2(scores * fused_scale
                         - lax.broadcast_in_dim(safe_max, scores.shape, [0]))
        acc *= lax.broadcast_in_dim(correction, acc.shape, [0])
        row_sum *= correction
        probs_low = probs.astype(dtype)

        # attention_mgpu's order for head dims <= 128 (it measured the difference, without an
        # explanation): the row sum, a barrier to the compiler, then the warpgroup barriers.
        row_sum += probs.sum(axis=1)
        acc, row_sum, new_max, probs_low = lax.optimization_barrier(
            (acc, row_sum, new_max, probs_low))
        plgpu.barrier_arrive(schedule)  # done with the softmax
        plgpu.barrier_wait(v_barriers.at[slot])
        plgpu.barrier_wait(schedule)  # the tensor cores are free

        def wait_next_k():
          @pl.when(kv_step + 1 < num_steps)
          def _():
            plgpu.barrier_wait(k_barriers.at[slot_of(first_step + kv_step + 1)])

        if interpret:
          # The interpreter (jax 0.11.2) runs neither run_state nor a wgmma whose left operand
          # is in registers: the same product as a plain dot of the shared-memory V tile.
          acc += lax.dot(probs_low, v_smem.at[slot][...], preferred_element_type=jnp.float32)
          wait_next_k()
        else:
          def compute_pv(acc_ref):
            plgpu.wgmma(acc_ref, probs_low, v_smem.at[slot])
            wait_next_k()
          acc = pl.run_state(compute_pv)(plgpu.ACC.init(acc))
        plgpu.barrier_arrive(v_consumed.at[slot])
        return acc, new_max, row_sum

      carry = (acc, row_max, row_sum)
      carry = lax.fori_loop(0, num_full, functools.partial(step, masked=False), carry)
      if causal:
        carry = lax.fori_loop(num_full, num_steps, functools.partial(step, masked=True), carry)

        def release(kv_step, _):
          # Steps only the other warpgroup needs: release their slots and keep the schedule
          # barrier's phases in step with it (two waits per step, as in ``step``). Waiting for
          # the tiles too keeps every barrier phase observed by each thread that waits on it
          # (the interpreter checks that when it frees a barrier; the other warpgroup waits
          # for the same tiles at the same time).
          slot = slot_of(first_step + kv_step)
          plgpu.barrier_wait(k_barriers.at[slot])
          plgpu.barrier_arrive(k_consumed.at[slot])
          plgpu.barrier_wait(v_barriers.at[slot])
          plgpu.barrier_arrive(v_consumed.at[slot])
          schedule_barrier()
          schedule_barrier()
        lax.fori_loop(num_steps, tile_steps, release, None)
      acc, row_max, row_sum = carry
      # Every Q @ K^T of the tile has completed (its scores were read): the buffer may take the
      # Q of the tile after next.
      plgpu.barrier_arrive(q_consumed.at[q_buffer])
      # Pairs with the other warpgroup's opening barrier of the next tile (or ends the last).
      pl.when(wg == 0)(schedule_barrier)

      row_sum = jnp.where(row_sum == 0.0, 1.0, row_sum)  # no visible key: 0 / 1
      acc /= lax.broadcast_in_dim(row_sum, (block_q, head_dim), [0])
      if config.separate_output:
        o_tile = o_smem.at[wg]
        plgpu.wait_smem_to_gmem(0)  # the previous tile's O has left o_tile
      else:
        o_tile = q_tile
      o_tile[...] = acc.astype(dtype)
      plgpu.commit_smem()
      plgpu.copy_smem_to_gmem(o_tile, out_ref.at[batch, pl.ds(row_start, block_q), q_head])
      return first_step + tile_steps, next_count

    if tiles_per_program == 1:
      run_tile(0, (0, count_of(0)))
    else:
      lax.fori_loop(0, tiles_per_program, run_tile, (jnp.int32(0), count_of(0)))
    plgpu.wait_smem_to_gmem(0)

  @pl.when(wg == COMPUTE_WARPGROUPS)
  def _memory_wg():
    plgpu.set_max_registers(MEMORY_REGISTERS, action="decrease")
    kv_head = lax.div(q_head, jnp.int32(heads_per_kv_head))

    def issue_q(t):
      """The Q rows of both compute warpgroups for the program's tile ``t``."""
      tile_start, q_buffer = tile_start_of(t), q_buffer_of(t)
      for w in range(COMPUTE_WARPGROUPS):
        plgpu.copy_gmem_to_smem(
            q_ref.at[batch, pl.ds(tile_start + w * block_q, block_q), q_head],
            q_smem.at[q_buffer].at[w], q_barriers.at[q_buffer * COMPUTE_WARPGROUPS + w])

    issue_q(0)

    def issue(start, slot):
      keys = (batch, pl.ds(start, block_kv), kv_head)
      plgpu.copy_gmem_to_smem(k_ref.at[keys], k_smem.at[slot], k_barriers.at[slot])
      plgpu.copy_gmem_to_smem(v_ref.at[keys], v_smem.at[slot], v_barriers.at[slot])

    def issue_after_release(start, step):
      # The slot's previous step (``step - slots``) must be consumed first.
      slot = slot_of(step)
      keys = (batch, pl.ds(start, block_kv), kv_head)
      plgpu.barrier_wait(k_consumed.at[slot])
      plgpu.copy_gmem_to_smem(k_ref.at[keys], k_smem.at[slot], k_barriers.at[slot])
      plgpu.barrier_wait(v_consumed.at[slot])
      plgpu.copy_gmem_to_smem(v_ref.at[keys], v_smem.at[slot], v_barriers.at[slot])

    if tiles_per_program == 1:
      _, key_start, _, _, program_steps = tile_of(0, count_of(0))
      # The first steps' keys are loaded before the step count is known (their list entries
      # exist even past the count), so the loads overlap rather than follow one another.
      first_starts = [key_start(jnp.int32(first))
                      for first in range(min(slots, max_kept * subs))]
      for first, start in enumerate(first_starts):
        pl.when(first < program_steps)(functools.partial(issue, start, first))

      @pl.loop(0, jnp.maximum(program_steps - slots, 0))
      def _(kv_step):
        issue_after_release(key_start(kv_step + slots), kv_step + slots)
    else:
      def first_key_of(t):
        """The first key of the program's tile ``t``'s first step (the list entry exists even
        for a tile with no step)."""
        return key_start_of(q_block_of(t))(jnp.int32(0))

      def load_tile(t, carry):
        # Scalar loads run a step (a tile, for the next tile's count and first key) ahead of
        # the copies that need them.
        first_step, count, first_key = carry
        next_count = prefetched_count(t, count)
        next_first_key = first_key_of(next_tile(t))
        _, key_start, _, _, tile_steps = tile_of(t, count)

        def load_step(kv_step, start):
          upcoming = key_start(jnp.minimum(kv_step + 1, max_kept * subs - 1))
          # Carried through the loop, the start loses what its product said about alignment
          # (TMA's tiled copies need it).
          start = pl.multiple_of(start, block_kv)
          step = first_step + kv_step

          @pl.when(step < slots)
          def _():
            issue(start, slot_of(step))

          @pl.when(step >= slots)
          def _():
            issue_after_release(start, step)
          return upcoming

        lax.fori_loop(0, tile_steps, load_step, first_key)

        # The next tile's Q goes into the buffer of tile t - 1, once its last Q @ K^T is done
        # (already so unless tile t has fewer steps than there are slots).
        @pl.when(t >= 1)
        def _():
          plgpu.barrier_wait(q_consumed.at[q_buffer_of(t - 1)])

        pl.when(t + 1 < tiles_per_program)(lambda: issue_q(t + 1))
        return first_step + tile_steps, next_count, next_first_key
      program_steps, _, _ = lax.fori_loop(0, tiles_per_program, load_tile,
                                          (jnp.int32(0), count_of(0), first_key_of(0)))

    # The last steps' releases, observed so that every barrier phase is (see ``release``); on
    # the GPU this only holds this warpgroup until the compute warpgroups finish, as the block
    # does anyway.
    @pl.loop(jnp.maximum(program_steps - slots, 0), program_steps)
    def _(kv_step):
      plgpu.barrier_wait(k_consumed.at[slot_of(kv_step)])
      plgpu.barrier_wait(v_consumed.at[slot_of(kv_step)])

    plgpu.barrier_wait(q_consumed.at[q_buffer_of(tiles_per_program - 1)])


@functools.partial(jax.jit, static_argnames=("block_size", "causal", "scale", "config",
                                             "interpret"))
def kernel_fn(q: jax.Array, k: jax.Array, v: jax.Array, kv_block_indices: jax.Array,
              kv_block_counts: jax.Array, *, block_size: tuple[int, int], causal: bool = False,
              scale: float | None = None, config: MgpuAttentionConfig | None = None,
              interpret: bool | plgpu.InterpretGPUParams = False) -> jax.Array:
  """Block-sparse attention forward on Hopper (Mosaic GPU).

  Args:
    q: [B, Sq, Hq, D] bfloat16 or float16, D 64 or 128, Sq a multiple of ``2 * block_q``.
    k, v: [B, Sk, Hkv, D], q's dtype; Hq a multiple of Hkv (query head h reads kv head
      h // (Hq // Hkv)); Sk a multiple of ``bk``.
    kv_block_indices: int32 [Hm, Sq/bq, max_kept], Hm 1 or Hq: ascending kept key blocks
      per query block; entries past the count are ignored.
    kv_block_counts: int32 [Hm, Sq/bq].
    block_size: (bq, bk) of the mask: ``bq`` a multiple of ``2 * block_q``, ``bk`` of
      ``block_kv``.
    causal: key j visible to query i only if j <= i + Sk - Sq (bottom-right aligned).
    scale: score scale, default 1/sqrt(D).
    config: tiles; default ``default_config`` of the call's head dim, mask blocks, query
      length, kept-list width and causality.
    interpret: run in Mosaic GPU interpret mode (on the CPU; slow, small shapes): True, or
      ``plgpu.InterpretGPUParams`` (e.g. ``detect_races=True``).

  Returns:
    [B, Sq, Hq, D] in q's dtype; a query row with no visible key is 0.
  """
  block_size = tuple(block_size)
  batch, q_len, num_heads, head_dim = q.shape
  kv_len, kv_heads = k.shape[1], k.shape[2]
  if config is None:
    config = default_config(head_dim=head_dim, block_size=block_size, q_len=q_len,
                            max_kept=kv_block_indices.shape[-1], causal=causal)
  check_arguments(q, k, v, kv_block_indices, kv_block_counts, block_size, config)
  scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
  dtype = q.dtype
  slots = config.max_concurrent_steps
  kernel = functools.partial(
      _attention_kernel, config=config, block_size=block_size,
      heads_per_kv_head=num_heads // kv_heads, per_head_mask=kv_block_indices.shape[0] > 1,
      causal=causal, qk_scale=scale * LOG2_E, q_len=q_len, kv_len=kv_len,
      interpret=bool(interpret))

  def entry(indices_ref, counts_ref, q_ref, k_ref, v_ref, out_ref):
    # 128-byte swizzled tiles of 64 elements: the layout wgmma reads and TMA writes.
    transforms = (plgpu.TilingTransform((8, 64)), plgpu.SwizzleTransform(128))
    def smem(*shape):
      return plgpu.SMEM(shape, dtype, transforms=transforms)
    q_tiles = smem(config.q_buffers, COMPUTE_WARPGROUPS, config.block_q, head_dim)
    # With one tile a program, O goes into the Q buffer (no buffer of its own: None).
    o_tiles = (smem(COMPUTE_WARPGROUPS, config.block_q, head_dim) if config.separate_output
               else None)
    tiles = (q_tiles, o_tiles, smem(slots, config.block_kv, head_dim),
             smem(slots, config.block_kv, head_dim))
    q_loads = config.q_buffers * COMPUTE_WARPGROUPS
    released = plgpu.Barrier(num_arrivals=COMPUTE_WARPGROUPS, num_barriers=slots)
    pl.run_scoped(
        lambda *scoped: kernel(indices_ref, counts_ref, q_ref, k_ref, v_ref, out_ref, scoped),
        tiles,
        (plgpu.Barrier(num_barriers=slots), plgpu.Barrier(num_barriers=slots),
         plgpu.Barrier(num_barriers=q_loads)),
        (released, released,
         plgpu.Barrier(num_arrivals=COMPUTE_WARPGROUPS, num_barriers=config.q_buffers)),
        plgpu.Barrier(num_arrivals=COMPUTE_WARPGROUPS),
        collective_axes="wg")

  return plgpu.kernel(
      entry,
      out_type=jax.ShapeDtypeStruct(q.shape, dtype),
      grid=(num_heads, q_len // (COMPUTE_WARPGROUPS * config.block_q * config.tiles_per_program),
            batch),
      grid_names=("heads", "q_seq", "batch"),
      num_threads=COMPUTE_WARPGROUPS + 1,
      thread_name="wg",
      compiler_params=plgpu.CompilerParams(approx_math=True),
      interpret=(interpret if isinstance(interpret, plgpu.InterpretGPUParams)
                 else plgpu.InterpretGPUParams() if interpret else False),
      kernel_name="block_sparse_attention_mgpu",
  )(kv_block_indices, kv_block_counts, q, k, v)
