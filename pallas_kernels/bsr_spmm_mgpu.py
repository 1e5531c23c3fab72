"""BSR SpMM on Hopper's tensor cores through Mosaic GPU: TMA copies into shared memory, wgmma.

``out[M, N] = A @ B`` for a BSR matrix A of [bm, bk] blocks (the layout of
``bsr_spmm.kernel_fn``, the Triton kernel, same contract) and a dense B [K, N]. One program (one
warpgroup) owns a [bm, tile_n] output tile: block row ``i`` of A times columns
``j * tile_n : (j + 1) * tile_n`` of B. It walks the stored blocks of its block row only
(``row_offsets[i] : row_offsets[i + 1]``, read as scalars from global memory, as the column
index of each block), and for stored block ``s`` TMA-copies ``data[s]`` [bm, bk] and
``B[col[s] * bk : col[s] * bk + bk, tile]`` [bk, tile_n] into one of ``max_concurrent_steps``
shared-memory slots (both copies on the slot's barrier). The wgmma of step ``s`` is issued
asynchronously; once it is issued the one of step ``s - 1`` is awaited (``wgmma_wait(1)``) and
the slot it read is refilled with step ``s - 1 + slots``, so up to ``slots - 1`` copies are in
flight beside one matrix product (the schedule of ``plgpu.emit_pipeline`` with
``delay_release=1``, over a per-program step count that ``emit_pipeline`` cannot take from a
GMEM array). The float32 accumulator lives in registers; the tile is cast to the input dtype,
staged in shared memory and TMA-stored. A block row with no stored block writes zeros.

With ``config.compute_warpgroups = 2`` (the default where N is a multiple of 256 and the call has
enough work: at least 100 programs of 256 columns and 10 stored blocks a block row, see
``default_config``) a program owns ``[bm, 2 * tile_n]`` and runs three warpgroups, as
``hopper_matmul_mgpu``'s N-split and ``attention_mgpu``'s warp specialization: a copy warpgroup
TMA-loads each stored block once and the two halves of its B rows, and two compute warpgroups
multiply that one A block with their own half, each releasing the slot through a ``consumed``
barrier after ``wgmma_wait(1)``. Each loaded A block then feeds twice the product
(``bm x 2 tile_n x bk``), two warpgroups issue wgmma at once, and neither waits on copies or index
loads of its own (on an H100 the one-warpgroup program missed issue 8's target at N = 1024 by
1.09-1.62x).

Work and bytes are proportional to the stored blocks; the kernel makes no pass over A besides
its own, so time falls with block density (plus one launch).

Restrictions (``check_arguments``; ``supports`` says which one a call breaks, so a caller can
fall back to the Triton kernel): float16/bfloat16 data and B; bm a multiple of 64 up to 256
(wgmma's M); bk a multiple of 16 up to 256 (the shared-memory swizzle, ``swizzle_for``, is the
largest of 128/64/32 bytes dividing a block row and is shared by A and B as wgmma requires; 16
bytes is no swizzle, which wgmma refuses); N a multiple of ``tile_n``; ``bm * tile_n <= 16384``
(the float32 accumulator of one warpgroup in at most 128 registers a thread); shared memory
within 227 KiB; with two compute warpgroups N a multiple of ``2 * tile_n``.

References: NVIDIA, "CUDA C++ Programming Guide: Asynchronous Warpgroup Matrix Multiply"
(Hopper wgmma, TMA); JAX's ``jax.experimental.pallas.ops.gpu.hopper_matmul_mgpu``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from pallas_kernels import _common, bsr_spmm

reference_fn = bsr_spmm.reference_fn

KERNEL_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
WGMMA_M = 64  # rows of one wgmma instruction
MAX_TILE = 256  # the largest TMA box dimension and wgmma N
MAX_ACCUMULATOR = 64 * 256  # float32 accumulator elements of one warpgroup (128 a thread)
SMEM_BYTES = _common.HOPPER_SHARED_MEMORY_BYTES  # the most a Hopper block may use
# Default slots fill about half of an SM's 228 KiB, so two programs share each SM (the second
# one's copies and products run while the first waits on memory).
DEFAULT_SMEM_BUDGET = 110 * 1024
NUM_SMS = 132  # H100 SXM; the default tile width aims at a launch of at least this many programs
TWO_WARPGROUP_N = 256  # the program width of the default two-warpgroup config
# The default picks two compute warpgroups only with enough work for them (default_config). H100,
# bf16, 2026-11-25 (experiments/gpu_checks/bsr_mgpu_bench.py, A 4096x4096 and 14336x4096, 64x64
# and 128x64 blocks, block densities 0.05-0.5, N 256 and 1024): one / two warpgroups' time was
# 1.00-1.27 at densities 0.2-0.5 (12.8-32 blocks a row) where the two-warpgroup launch had >= 112
# programs (14336x4096 b64x64 N=1024 d=0.5: 193.1 -> 152.6 us), 0.89-1.01 at densities 0.05-0.1
# (3.2-6.4 blocks a row; one case 1.04; the same shape at d=0.05: 29.5 vs 32.9 us) and 0.60-0.94
# where it had 32-64 programs on 132 SMs, any density (4096x4096 b128x64 N=256 d=0.5: 19.7 vs
# 29.3 us).
MIN_TWO_WARPGROUP_PROGRAMS = 100  # programs of TWO_WARPGROUP_N columns: (M / bm) * (N / 256)
MIN_TWO_WARPGROUP_BLOCKS_PER_ROW = 10  # mean stored blocks per block row (K = 4096: d >= 0.16)
# Register split of the two-warpgroup program (as attention_mgpu): the compute warpgroups hold
# the accumulators, the copy warpgroup only addresses.
COMPUTE_REGISTERS, MEMORY_REGISTERS = 232, 40


@dataclasses.dataclass(frozen=True)
class MgpuBsrSpmmConfig:
  """Launch parameters of one call.

  Attributes:
    tile_n: columns of B and of the output per compute warpgroup: a positive multiple of 64 up
      to 256 (wgmma's N, the output tile's 128-byte swizzle); a program covers
      ``compute_warpgroups * tile_n`` columns, which must divide N.
    max_concurrent_steps: shared-memory slots for (A block, B rows) pairs (>= 2: one being
      multiplied while the next ones load).
    compute_warpgroups: 1: one warpgroup loads and multiplies (``_bsr_kernel``). 2: two compute
      warpgroups share each A block and multiply it with their own ``tile_n`` columns of B,
      beside a third warpgroup that only issues the TMA copies (``_bsr_kernel_two_warpgroups``).
  """

  tile_n: int = 128
  max_concurrent_steps: int = 3
  compute_warpgroups: int = 1

  def __post_init__(self):
    if self.tile_n <= 0 or self.tile_n % 64 or self.tile_n > MAX_TILE:
      raise ValueError(f"MgpuBsrSpmmConfig.tile_n must be a positive multiple of 64 up to "
                       f"{MAX_TILE}, got {self.tile_n}")
    if self.max_concurrent_steps < 2:
      raise ValueError("MgpuBsrSpmmConfig.max_concurrent_steps must be >= 2, got "
                       f"{self.max_concurrent_steps}")
    if self.compute_warpgroups not in (1, 2):
      raise ValueError("MgpuBsrSpmmConfig.compute_warpgroups must be 1 or 2, got "
                       f"{self.compute_warpgroups}")

  @property
  def program_n(self) -> int:
    """Columns of B and of the output per program."""
    return self.compute_warpgroups * self.tile_n

  def smem_bytes(self, block_shape: tuple[int, int], itemsize: int) -> int:
    """Shared memory of the slots and the output tile."""
    bm, bk = block_shape
    slot = (bm * bk + bk * self.program_n) * itemsize
    return self.max_concurrent_steps * slot + bm * self.program_n * itemsize


def default_config(*, block_shape: tuple[int, int], num_rows: int, num_n: int,
                   itemsize: int = 2, compute_warpgroups: int | None = None,
                   blocks_per_row: float | None = None) -> MgpuBsrSpmmConfig:
  """The config for an [num_rows, K] x [K, num_n] call with [bm, bk] blocks.

  ``compute_warpgroups``: None chooses as below; 1 or 2 asks for that variant with the tiles
  and slots it would get (2 falls back to 1 where no two-warpgroup tile divides N and fits).
  ``blocks_per_row``: the mean stored blocks per block row (nse / (num_rows / bm)), None if
  unknown (then only the shapes decide).

  Two compute warpgroups (a program of ``2 * tile_n`` columns) only where all of these hold: N is a
  multiple of ``TWO_WARPGROUP_N`` (256); the launch has at least ``MIN_TWO_WARPGROUP_PROGRAMS``
  (100) programs of 256 columns, ``(num_rows / bm) * (N / 256)``; ``blocks_per_row`` is None or at
  least ``MIN_TWO_WARPGROUP_BLOCKS_PER_ROW`` (10). Each loaded A block then feeds twice the product,
  which paid on an H100 only with enough of both: with few programs most SMs get none (32-64
  two-warpgroup programs on 132 SMs, where one warpgroup of 64 columns launches four times as many),
  and with few blocks a row the two-warpgroup program has little to overlap (the measurements are
  beside ``MIN_TWO_WARPGROUP_PROGRAMS``). Against the 32 measured cases of N 256 and 1024 (1wg / 2wg
  time, bsr_mgpu_bench.py, H100, 2026-11-25) the rule picks the faster variant in 28, is within 1%
  of it in 3 (14336x4096: b64x64 N=256 d=0.2, two warpgroups, 1wg / 2wg 1.003; b64x64 N=1024 d=0.1,
  one, 1.005; b128x64 N=256 d=0.1, one, 1.000) and is wrong in 1: 4096x4096 b128x64 N=1024 d=0.1
  (6.4 blocks a row, one warpgroup: 14.5 us, two: 13.9 us). The old rule (two warpgroups at every N
  >= 512 that 256 divides) took two at N = 1024, d 0.05-0.1, where one was faster in 6 of 8 cases
  (1wg / 2wg 0.89-0.96), and one at N = 256 on 14336 rows, d >= 0.2 (1wg / 2wg 1.00-1.25). Padding
  blocks (past ``row_offsets[-1]``, which ``supports`` and ``kernel_fn`` count in nse) overstate
  ``blocks_per_row``.

  The two-warpgroup program holds most of an SM's registers, so one runs per SM and its slots may
  fill the shared memory (``SMEM_BYTES``). ``tile_n`` is then 128, or 64 where a 128-wide
  accumulator would not fit the registers (bm > 128) or two slots would not fit the shared memory
  (128x128 blocks); where not even 64 fits, one warpgroup.

  One warpgroup: ``tile_n`` 128 where it divides N (64 otherwise), halved to 64 while the launch
  would have fewer than ``NUM_SMS`` programs (N = 128 on 4096 rows of 64-row blocks: 128
  programs, not 64), and 64 where bm > 128; slots within ``DEFAULT_SMEM_BUDGET`` (two programs
  an SM).

  ``max_concurrent_steps``: as many slots as fit the budget beside the output tile, between 2
  and 4.
  """
  bm, bk = block_shape
  wide = bm * 128 <= MAX_ACCUMULATOR

  def with_slots(tile_n: int, warpgroups: int, budget: int) -> MgpuBsrSpmmConfig:
    program_n = warpgroups * tile_n
    slot = (bm * bk + bk * program_n) * itemsize
    slots = (budget - bm * program_n * itemsize) // slot
    return MgpuBsrSpmmConfig(tile_n=tile_n, max_concurrent_steps=int(min(4, max(2, slots))),
                             compute_warpgroups=warpgroups)

  if compute_warpgroups is None:
    programs = (num_rows // bm) * (num_n // TWO_WARPGROUP_N)
    enough_work = (num_n % TWO_WARPGROUP_N == 0 and num_n >= TWO_WARPGROUP_N
                   and programs >= MIN_TWO_WARPGROUP_PROGRAMS
                   and (blocks_per_row is None
                        or blocks_per_row >= MIN_TWO_WARPGROUP_BLOCKS_PER_ROW))
    compute_warpgroups = 2 if enough_work else 1
  if compute_warpgroups == 2:
    for tile_n in ((128, 64) if wide else (64,)):
      config = with_slots(tile_n, 2, SMEM_BYTES)
      if num_n % config.program_n == 0 and config.smem_bytes(block_shape, itemsize) <= SMEM_BYTES:
        return config
  tile_n = 128 if num_n % 128 == 0 and wide else 64
  if tile_n > 64 and (num_rows // bm) * (num_n // tile_n) < NUM_SMS:
    tile_n = 64
  return with_slots(tile_n, 1, DEFAULT_SMEM_BUDGET)


def swizzle_for(bk: int, itemsize: int) -> int:
  """Bytes of the shared-memory swizzle of the A and B tiles: the largest of 128, 64 and 32
  dividing a block row of ``bk`` elements (wgmma's K groups are one swizzle wide)."""
  for swizzle in (128, 64, 32):
    if (bk * itemsize) % swizzle == 0:
      return swizzle
  raise ValueError(f"block_shape[1] = {bk} must be a multiple of {32 // itemsize} (a 32-byte "
                   "row, the smallest swizzle wgmma accepts)")


def check_arguments(data, col_indices, row_offsets, dense, shape: tuple[int, int],
                    config: MgpuBsrSpmmConfig) -> None:
  """Raises ValueError/TypeError naming the argument when this kernel cannot run the call."""
  if len(data.shape) != 3:
    raise ValueError(f"data must be [nse, bm, bk], got shape {data.shape}")
  _, bm, bk = data.shape
  num_rows, num_cols = shape
  if jnp.dtype(data.dtype) not in KERNEL_DTYPES:
    raise TypeError(f"data must be float16 or bfloat16 for the Mosaic GPU kernel, got "
                    f"{data.dtype}")
  if jnp.dtype(dense.dtype) != jnp.dtype(data.dtype):
    raise TypeError(f"dense must have data's dtype {data.dtype}, got {dense.dtype}")
  for name, indices in (("col_indices", col_indices), ("row_offsets", row_offsets)):
    if not jnp.issubdtype(indices.dtype, jnp.integer):
      raise TypeError(f"{name} must be int32 or int64, got {indices.dtype}")
  if len(dense.shape) != 2 or dense.shape[0] != num_cols:
    raise ValueError(f"dense must be [K, N] with K = shape[1] = {num_cols}, got shape "
                     f"{dense.shape}")
  if bm % WGMMA_M or bm > MAX_TILE:
    raise ValueError(f"block_shape[0] (bm) must be a multiple of {WGMMA_M} up to {MAX_TILE} "
                     f"for the Mosaic GPU kernel, got {bm}")
  itemsize = jnp.dtype(data.dtype).itemsize
  swizzle_for(bk, itemsize)
  if bk > MAX_TILE:
    raise ValueError(f"block_shape[1] (bk) must be at most {MAX_TILE}, got {bk}")
  if num_rows % bm or num_cols % bk:
    raise ValueError(f"shape {shape} must be a multiple of the block shape {(bm, bk)}")
  if row_offsets.shape != (num_rows // bm + 1,):
    raise ValueError(f"row_offsets must be [M / bm + 1] = [{num_rows // bm + 1}], got shape "
                     f"{row_offsets.shape}")
  if col_indices.shape != (data.shape[0],):
    raise ValueError(f"col_indices must be [nse] = [{data.shape[0]}], got shape "
                     f"{col_indices.shape}")
  if dense.shape[1] % config.program_n:
    raise ValueError(f"dense's N = {dense.shape[1]} must be a multiple of config.tile_n = "
                     f"{config.tile_n} times config.compute_warpgroups = "
                     f"{config.compute_warpgroups}")
  if bm * config.tile_n > MAX_ACCUMULATOR:
    raise ValueError(f"bm * config.tile_n = {bm} * {config.tile_n} must be at most "
                     f"{MAX_ACCUMULATOR} (the float32 accumulator in registers)")
  smem = config.smem_bytes((bm, bk), itemsize)
  if smem > SMEM_BYTES:
    raise ValueError(f"config {config} needs {smem} bytes of shared memory for {bm}x{bk} "
                     f"blocks, more than {SMEM_BYTES}")


def blocks_per_row(data_shape: tuple[int, ...], shape: tuple[int, int]) -> float:
  """Mean stored blocks per block row of data [nse, bm, bk] for an (M, K) matrix: nse / (M / bm)
  (padding blocks included; the ``blocks_per_row`` of ``default_config``)."""
  return data_shape[0] / max(1, shape[0] // max(1, data_shape[1]))


def supports(data, col_indices, row_offsets, dense, *, shape: tuple[int, int],
             config: MgpuBsrSpmmConfig | None = None) -> bool | str:
  """True if ``kernel_fn`` accepts these arguments (arrays or ``jax.ShapeDtypeStruct``), else
  why not (fall back to ``bsr_spmm.kernel_fn``)."""
  try:
    if config is None:
      if len(data.shape) != 3 or len(dense.shape) != 2:
        raise ValueError(f"data must be [nse, bm, bk] and dense [K, N], got shapes "
                         f"{data.shape} and {dense.shape}")
      config = default_config(block_shape=tuple(data.shape[1:]), num_rows=shape[0],
                              num_n=dense.shape[1],
                              blocks_per_row=blocks_per_row(data.shape, shape))
    check_arguments(data, col_indices, row_offsets, dense, tuple(shape), config)
  except (TypeError, ValueError) as error:
    return str(error)
  return True


def _bsr_kernel(row_offsets_ref, col_indices_ref, data_ref, dense_ref, out_ref, scoped, *,
                config: MgpuBsrSpmmConfig):
  """One program: a [bm, tile_n] output tile (see the module docstring). ``scoped``: the
  shared-memory slots, the output tile and the slots' barriers from ``kernel_fn``."""
  (a_smem, b_smem, out_smem), loaded = scoped
  _, bm, bk = data_ref.shape
  tile_n, slots = config.tile_n, config.max_concurrent_steps
  last_block = data_ref.shape[0] - 1
  block_row = lax.axis_index("rows")
  columns = pl.ds(lax.axis_index("n") * tile_n, tile_n)
  start = row_offsets_ref[block_row]
  count = row_offsets_ref[block_row + 1] - start

  def block_column(step):
    # Clamped: the index of a step past the count is read (to start the load early) but unused.
    return col_indices_ref[jnp.minimum(start + step, last_block)]

  def issue(step, block_col):
    slot = lax.rem(step, jnp.int32(slots))
    plgpu.copy_gmem_to_smem(data_ref.at[start + step], a_smem.at[slot], loaded.at[slot])
    plgpu.copy_gmem_to_smem(dense_ref.at[pl.ds(block_col * bk, bk), columns], b_smem.at[slot],
                            loaded.at[slot])

  for step in range(slots):
    block_col = block_column(step)
    pl.when(step < count)(functools.partial(issue, jnp.int32(step), block_col))

  def accumulate(acc_ref):
    @pl.loop(0, count)
    def _(step):
      fetch = step + slots - 1  # into the slot of step - 1, free once its wgmma is done
      fetch_col = block_column(fetch)
      slot = lax.rem(step, jnp.int32(slots))
      plgpu.barrier_wait(loaded.at[slot])
      plgpu.wgmma(acc_ref, a_smem.at[slot], b_smem.at[slot])
      plgpu.wgmma_wait(1)
      pl.when((step > 0) & (fetch < count))(functools.partial(issue, fetch, fetch_col))
    return acc_ref[...]

  acc = pl.run_scoped(accumulate, plgpu.ACC((bm, tile_n), jnp.float32))
  out_smem[...] = acc.astype(out_smem.dtype)
  plgpu.commit_smem()
  plgpu.copy_smem_to_gmem(out_smem, out_ref.at[pl.ds(block_row * bm, bm), columns])
  plgpu.wait_smem_to_gmem(0)


def _bsr_kernel_two_warpgroups(row_offsets_ref, col_indices_ref, data_ref, dense_ref, out_ref,
                               scoped, *, config: MgpuBsrSpmmConfig):
  """One program of three warpgroups: a [bm, 2 * tile_n] output tile. Warpgroups 0 and 1
  compute (``_compute_wg``: [bm, tile_n] each, from the same A block in shared memory and their
  own half of the B rows); warpgroup 2 only copies (``_memory_wg``): step ``s``'s A block and
  both B halves into slot ``s % slots`` on ``loaded[slot]``, refilling a slot once both compute
  warpgroups have arrived on its ``consumed`` barrier. Every thread that waits on a barrier
  waits for each of its phases (the Mosaic GPU interpreter checks that), so the copy
  warpgroup also waits for the last ``slots`` releases."""
  (a_smem, b_smem, out_smem), (loaded, consumed) = scoped
  _, bm, bk = data_ref.shape
  tile_n, slots = config.tile_n, config.max_concurrent_steps
  last_block = data_ref.shape[0] - 1
  warpgroup = lax.axis_index("wg")
  block_row = lax.axis_index("rows")
  program_col = lax.axis_index("n") * config.program_n
  start = row_offsets_ref[block_row]
  count = row_offsets_ref[block_row + 1] - start

  def slot_of(step):
    return lax.rem(step, jnp.int32(slots))

  @pl.when(warpgroup < 2)
  def _compute_wg():
    plgpu.set_max_registers(COMPUTE_REGISTERS, action="increase")

    def accumulate(acc_ref):
      @pl.loop(0, count)
      def _(step):
        slot = slot_of(step)
        plgpu.barrier_wait(loaded.at[slot])
        plgpu.wgmma(acc_ref, a_smem.at[slot], b_smem.at[slot, warpgroup])
        plgpu.wgmma_wait(1)  # step - 1's product is done: release its slot

        @pl.when(step > 0)
        def _():
          plgpu.barrier_arrive(consumed.at[slot_of(step - 1)])

      plgpu.wgmma_wait(0)

      @pl.when(count > 0)
      def _():
        plgpu.barrier_arrive(consumed.at[slot_of(count - 1)])
      return acc_ref[...]

    acc = pl.run_scoped(accumulate, plgpu.ACC((bm, tile_n), jnp.float32))
    out_smem.at[warpgroup][...] = acc.astype(out_smem.dtype)
    plgpu.commit_smem()
    plgpu.copy_smem_to_gmem(
        out_smem.at[warpgroup],
        out_ref.at[pl.ds(block_row * bm, bm), pl.ds(program_col + warpgroup * tile_n, tile_n)])
    plgpu.wait_smem_to_gmem(0)

  @pl.when(warpgroup == 2)
  def _memory_wg():
    plgpu.set_max_registers(MEMORY_REGISTERS, action="decrease")

    def issue(step, block_col):
      slot = slot_of(step)
      plgpu.copy_gmem_to_smem(data_ref.at[start + step], a_smem.at[slot], loaded.at[slot])
      for half in range(2):
        plgpu.copy_gmem_to_smem(
            dense_ref.at[pl.ds(block_col * bk, bk), pl.ds(program_col + half * tile_n, tile_n)],
            b_smem.at[slot, half], loaded.at[slot])

    # Clamped: a step past the count reads some block's column (to start early) but is unused.
    for step in range(slots):
      block_col = col_indices_ref[jnp.minimum(start + step, last_block)]
      pl.when(step < count)(functools.partial(issue, jnp.int32(step), block_col))

    @pl.loop(slots, jnp.maximum(count, slots))
    def _(step):
      block_col = col_indices_ref[start + step]
      plgpu.barrier_wait(consumed.at[slot_of(step)])  # released by step - slots
      issue(step, block_col)

    @pl.loop(jnp.maximum(count - slots, 0), count)
    def _(step):
      plgpu.barrier_wait(consumed.at[slot_of(step)])


def _tile_transforms(minor_elems: int, itemsize: int) -> tuple:
  """Tiling (8, swizzle / itemsize) and the swizzle for tiles whose rows hold ``minor_elems``
  elements: the layout TMA writes and wgmma reads."""
  swizzle = swizzle_for(minor_elems, itemsize)
  return (plgpu.TilingTransform((8, swizzle // itemsize)), plgpu.SwizzleTransform(swizzle))


@functools.partial(jax.jit, static_argnames=("shape", "config", "interpret"))
def kernel_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, dense: jax.Array,
              *, shape: tuple[int, int], config: MgpuBsrSpmmConfig | None = None,
              interpret: bool | plgpu.InterpretGPUParams = False) -> jax.Array:
  """``A @ B`` for a BSR matrix A on Hopper (Mosaic GPU).

  Args:
    data: [nse, bm, bk] block values, float16 or bfloat16; bm a multiple of 64 up to 256, bk a
      multiple of 16 up to 256.
    col_indices: int32/int64 [nse] block column of each block.
    row_offsets: int32/int64 [M / bm + 1]; blocks at or past ``row_offsets[-1]`` are padding.
      int64 indices are cast to int32 first (one more XLA op).
    dense: [K, N] of data's dtype, N a multiple of ``config.tile_n``.
    shape: (M, K) of A.
    config: launch parameters; default ``default_config(...)`` for the shapes.
    interpret: run in Mosaic GPU interpret mode (on the CPU; slow, small shapes): True, or
      ``plgpu.InterpretGPUParams``.

  Returns:
    [M, N] of data's dtype, accumulated in float32; rows of empty block rows are 0.
  """
  shape = tuple(shape)
  _, bm, bk = data.shape
  num_n = dense.shape[1]
  if config is None:
    config = default_config(block_shape=(bm, bk), num_rows=shape[0], num_n=num_n,
                            blocks_per_row=blocks_per_row(data.shape, shape))
  check_arguments(data, col_indices, row_offsets, dense, shape, config)
  if data.shape[0] == 0:
    return jnp.zeros((shape[0], num_n), data.dtype)
  dtype, itemsize = data.dtype, jnp.dtype(data.dtype).itemsize
  slots, warpgroups = config.max_concurrent_steps, config.compute_warpgroups
  operand_transforms = _tile_transforms(bk, itemsize)  # wgmma: one swizzle for both
  out_transforms = _tile_transforms(config.tile_n, itemsize)
  # One warpgroup: [slots, bk, tile_n] B tiles; two: [slots, 2, bk, tile_n], a half each.
  b_tiles = (slots,) + ((warpgroups,) if warpgroups > 1 else ()) + (bk, config.tile_n)
  out_tile = ((warpgroups,) if warpgroups > 1 else ()) + (bm, config.tile_n)
  tiles = (plgpu.SMEM((slots, bm, bk), dtype, transforms=operand_transforms),
           plgpu.SMEM(b_tiles, dtype, transforms=operand_transforms),
           plgpu.SMEM(out_tile, dtype, transforms=out_transforms))

  def entry(row_offsets_ref, col_indices_ref, data_ref, dense_ref, out_ref):
    refs = (row_offsets_ref, col_indices_ref, data_ref, dense_ref, out_ref)
    if warpgroups == 1:
      pl.run_scoped(lambda *scoped: _bsr_kernel(*refs, scoped, config=config),
                    tiles, plgpu.Barrier(num_arrivals=2, num_barriers=slots))
    else:
      pl.run_scoped(
          lambda *scoped: _bsr_kernel_two_warpgroups(*refs, scoped, config=config),
          tiles,
          # loaded: one arrival per copy (the A block, two B halves); consumed: one a warpgroup.
          (plgpu.Barrier(num_arrivals=1 + warpgroups, num_barriers=slots),
           plgpu.Barrier(num_arrivals=warpgroups, num_barriers=slots)),
          collective_axes="wg")

  threads = dict(num_threads=warpgroups + 1, thread_name="wg") if warpgroups > 1 else {}
  return plgpu.kernel(
      entry,
      out_type=jax.ShapeDtypeStruct((shape[0], num_n), dtype),
      # Column tiles vary fastest: the programs in flight together share A's blocks (each read
      # by N / program_n neighbours) while B stays in L2.
      grid=(num_n // config.program_n, shape[0] // bm),
      grid_names=("n", "rows"),
      interpret=(interpret if isinstance(interpret, plgpu.InterpretGPUParams)
                 else plgpu.InterpretGPUParams() if interpret else False),
      kernel_name="jsparse_bsr_spmm_mgpu" + ("_2wg" if warpgroups > 1 else ""),
      **threads,
  )(row_offsets.astype(jnp.int32), col_indices.astype(jnp.int32), data, dense)
