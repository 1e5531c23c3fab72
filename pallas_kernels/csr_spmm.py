"""CSR SpMM ``A @ B`` as a Pallas (Triton) kernel, Sputnik-style.

One program computes one output row (or ``rows_per_program`` rows, their steps interleaved) and
``block_n`` output columns (tiling over rows and an N tile). Programs take rows longest first
(``_rows.rows_by_length``, power-of-two buckets) so that long rows start first and neighbouring
programs do similar work. Each step reads
``block_nnz`` column indices and values of the row and gathers the ``block_nnz`` matching rows of
``B`` as one ``[block_nnz, block_n]`` tile (each B row a contiguous, vectorizable load); the last
step of a row is the masked residue. Products accumulate in float32 in a ``[block_nnz, block_n]``
register tile, reduced once per row, so the inner loop is FMAs only (``fma.rn.f32`` through inline
PTX: the Pallas lowering gives Triton no contractible multiply-add).

Programs are one warp wherever the launch fills the GPU (``choose_config``). Then the final
reduction needs no shared memory, and XLA launches the kernel without its prefer-shared cache
setting, which would leave ~23 KB of L1. The rows of B that the programs of one N tile gather
then hit in L1, as in Sputnik's 32-thread blocks (BUILD_NOTES.md, GPU section).

References: T. Gale, M. Zaharia, C. Young, E. Elsen, "Sparse GPU Kernels for Deep Learning",
SC20 (arXiv 2006.10901).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from pallas_kernels import _common, _rows

PREFETCH_MODES = ("none", "indices", "tile")


@dataclasses.dataclass(frozen=True)
class SpmmConfig:
  """Tile sizes and launch parameters of ``kernel_fn``.

  Attributes:
    block_n: output columns per program (a power of two).
    block_nnz: nonzeros of a row consumed per step (a power of two).
    num_warps: Triton warps per program.
    num_stages: Triton software-pipelining stages.
    rows_per_program: rows of the launch order one program computes (a power of two), their
      steps interleaved (more loads in flight per program; rows of one power-of-two length
      bucket are neighbours in the order, so the longest row sets the step count).
    prefetch: what a step loads for later steps, by hand (Triton software-pipelines only loops
      that feed a ``dot``, so these loops get no pipelining of their own): ``"none"``;
      ``"indices"``, the next step's column indices and values (the gather of B no longer waits
      on a load issued in the same step); ``"tile"``, also the next step's gathered B tile
      (the step's FMAs use data loaded one step earlier; one more register tile).
    substeps: tiles of ``block_nnz`` entries a step loads (a power of two; prefetch "none"
      only) before any of their FMAs, all into one ``[block_nnz, block_n]`` accumulator: the
      loads in flight of ``substeps * block_nnz`` entries at the registers of ``block_nnz``
      (a larger ``block_nnz`` also grows the accumulator).
    row_splits: programs a row's entries are split across (a power of two), each summing an
      equal share into a float32 partial product ``[row_splits, M, N]`` that one XLA sum
      reduces: launches of few, long rows (DLMC's 512-row matrices) otherwise run a few long
      serial loops on an idle GPU. Deterministic (no atomics).
  """

  block_n: int = 64
  block_nnz: int = 32
  num_warps: int = 4
  num_stages: int = 2
  rows_per_program: int = 1
  prefetch: str = "none"
  substeps: int = 1
  row_splits: int = 1

  def __post_init__(self):
    for name in ("block_n", "block_nnz", "rows_per_program", "substeps", "row_splits"):
      value = getattr(self, name)
      if value < 1 or value & (value - 1):
        raise ValueError(f"SpmmConfig.{name} must be a power of two, got {value}")
    if self.prefetch not in PREFETCH_MODES:
      raise ValueError(f"SpmmConfig.prefetch must be one of {PREFETCH_MODES}, got "
                       f"{self.prefetch!r}")
    if self.substeps > 1 and self.prefetch != "none":
      raise ValueError(f"SpmmConfig.substeps > 1 needs prefetch 'none', got "
                       f"{self.prefetch!r}")


# One-warp programs a launch needs to fill an H100/H200 (132 SMs, ~16 resident one-warp programs
# each at these kernels' registers).
ONE_WARP_MIN_PROGRAMS = 2048


# The most bytes of float32 partial products (``row_splits`` x M x N) a chosen config makes.
SPLIT_PARTIALS_BYTES = 32 << 20
# Launches of 1024 to SPLIT_BELOW_ROWS - 1 rows of >= 256 entries at N > 32 split rows too, in
# at most MID_ROWS_MAX_SPLITS (choose_config: a sharded matrix's row pieces).
SPLIT_BELOW_ROWS = 2048
MID_ROWS_MAX_SPLITS = 4


def choose_config(num_rows: int, num_cols: int, n: int, nse: int) -> SpmmConfig:
  """A heuristic config for an ``[M, K]`` matrix with ``nse`` stored entries times ``[K, n]``.

  One warp a program where the launch allows it. XLA launches a kernel that asks for dynamic
  shared memory with ``CU_FUNC_CACHE_PREFER_SHARED``, which leaves ~23 KB of L1. On several warps,
  the final sum across a tile's nonzero axis goes through shared memory; on one warp it takes
  shuffles only, so the kernel runs with L1 at full size. There, the rows of B that the programs
  of one N tile gather (rows fastest in the launch) hit: 50% L1 hits against 13%, and 39% fewer
  L2 reads (Nsight Compute, H200, s = 0.9, N = 128).

  Measured on an H200 (2026-11-25, float32 4096 x 4096 uniform; four warps -> one warp):
  - s = 0.9, N = 128: 126-153 -> 87 us.
  - s = 0.5, N = 1024: 3568 -> 2245 us.
  - s = 0.98, N = 128: 37.5 -> 24.6 us.
  - s = 0.9, N = 32: 36.1 -> 29.5 us.

  The earlier four-warp launch (64 x 32 tiles) stayed where one warp lost (H200, bfloat16,
  MiniLM's layers, before row splits):
  - Fewer than ``ONE_WARP_MIN_PROGRAMS`` programs (M x N tiles): one-warp programs leave SMs
    idle. 384 x 1536 at 70%, N = 128: 35.7 us on one warp, 14.4 on four.
  - Fewer than 1024 rows of 256 entries or more: an N tile's rows are too few to share L1, and
    each one-warp program runs a long serial loop. 384 x 1536 at 70%, N = 4096: 346 against
    201 us.
  Where rows average >= 192 entries, such launches now split rows over one-warp programs instead
  (last item below; on an H100, 384 x 1536 at 70%, N = 128, bfloat16: 9.5 us split, 10.2 on
  four warps). Four warps remain for launches of few programs with shorter rows, at N > 32 or
  N <= 16.

  On one warp:
  - 64-column tiles take steps of two 8-entry tiles (``substeps``). Measured on an H100
    (2026-11-26, device time per call, float32, ten of the cases where the kernel trailed
    Sputnik; experiments/results/h100-2026-11-26-spmm-substeps/): 8 x 2 took 0.89x the time of
    the earlier 16 x 1 / 8 x 1 steps (geometric mean; 0.83-1.03x), more loads in flight at the
    registers of an 8-entry accumulator; 16 x 1 and 16 x 2, with twice its accumulator, were
    slower.
  - Rows of 256 entries or more at N >= 256 take 128-column tiles of 8-entry steps (H100,
    2026-11-26, ``spmm_config_sweep.py --wide`` and a rerun, uniform 4096 x 4096:
    experiments/results/h100-2026-11-26-spmm-ncu/). Sputnik's warps take 256 columns and hit
    L1 56% of the time, against 37% for 64-column tiles (Nsight Compute, s = 0.9, N = 1024).
    At s = 0.9 (410-entry rows), N = 1024 / 512 / 256: 510 -> 374 / 273 -> 223 / 126 -> 109 us;
    s = 0.8, N = 1024: 857 -> 766. Not at s = 0.95 (205-entry rows: 1.10x slower at N = 1024), nor
    at N = 128 (1.00x), nor with sub-steps (8 x 4: 1.2-1.4x slower); 256-column tiles of 4
    entries won only at s = 0.8.
  - 32-column tiles (17 <= N <= 32) take one warp on any launch but few long rows: 32-entry
    steps on launches of fewer than 4096 programs, else 16 (same sweep, N = 32: on uniform
    4096 x 4096 at s = 0.5-0.98, 16 x 1 was the fastest or within 1%; on DLMC 512 x 512,
    512 x 2048 and 2048 x 512, 32 x 1 on one warp took 0.79-0.88x the time of 16 x 1, on four
    warps for the 512-row launches).
  - Narrower tiles (N <= 16) keep 16-entry steps.
  - Long rows on a launch of few programs (mean row >= 192 entries, and fewer than 2048
    programs or fewer than 1024 rows) split each row over ``row_splits`` one-warp programs, about
    48 entries a row each, up to 8 (H100, 2026-11-26, `--long` sweep, float32): DLMC
    magnitude-pruned 512 x 2048 at s = 0.8, N = 32: 16.9 -> 7.2 us, N = 128: 23.8 -> 13.9; at
    s = 0.5, N = 32: 21.8 -> 10.7; random-pruned s = 0.8, N = 32: 8.9 -> 6.8. Rows of 154 entries
    (512 x 512 at s = 0.7, N = 128) were 6% slower split, hence 192. The partial products
    stay within ``SPLIT_PARTIALS_BYTES`` (fewer splits on wide products).
  - At N > 32, rows of >= 256 entries on launches of 1024 to ``SPLIT_BELOW_ROWS`` - 1 rows split
    too, in at most ``MID_ROWS_MAX_SPLITS`` (H100, 2026-11-27, ``spmm_config_sweep.py
    --pieces``, uniform s = 0.9, K = 4096: the row pieces of a sharded matrix). One-warp
    programs of 410-entry rows fill about two waves there, and the kernel took ~90 us + 0.07 us
    a row at N = 1024. 64-column tiles in four splits took 145 / 204 us against 181 / 240 at
    1024 / 1536 rows, N = 1024, and 20.7 / 27.7 against 24.2 / 29.4 at N = 128, the fastest
    launch measured in each; at 2048 rows splits lost (1.10x), and at N = 32 too (1024 rows:
    9.6 against 8.6 us) (experiments/results/h100-2026-11-27-spmm-pieces/).
  ``num_cols`` is accepted for heuristics keyed on K; unused now.
  """
  del num_cols
  block_n = min(64, pl.next_power_of_2(max(n, 1)))
  mean_row = nse / max(num_rows, 1)
  programs = num_rows * pl.cdiv(max(n, 1), block_n)
  few_long_rows = num_rows < 1024 and mean_row >= 256
  mid_long_rows = block_n >= 64 and 1024 <= num_rows < SPLIT_BELOW_ROWS and mean_row >= 256
  if block_n >= 32 and mean_row >= 192 and (programs < ONE_WARP_MIN_PROGRAMS or few_long_rows
                                            or mid_long_rows):
    splits = min(MID_ROWS_MAX_SPLITS if mid_long_rows else 8,
                 _common.floor_power_of_two(int(mean_row) // 48),
                 _common.floor_power_of_two(SPLIT_PARTIALS_BYTES // (num_rows * n * 4)))
    return SpmmConfig(block_n=block_n, block_nnz=16 if block_n == 32 else 8, num_warps=1,
                      num_stages=2, substeps=1 if block_n == 32 else 2, row_splits=splits)
  if block_n == 32 and not few_long_rows:
    block_nnz = 32 if programs < 2 * ONE_WARP_MIN_PROGRAMS else 16
    return SpmmConfig(block_n=block_n, block_nnz=block_nnz, num_warps=1, num_stages=2)
  if programs < ONE_WARP_MIN_PROGRAMS or few_long_rows:
    return SpmmConfig(block_n=block_n, block_nnz=max(16, min(32, block_n // 2)), num_warps=4)
  if block_n < 64:
    return SpmmConfig(block_n=block_n, block_nnz=16, num_warps=1, num_stages=2)
  if mean_row >= 256 and n >= 256:
    return SpmmConfig(block_n=128, block_nnz=8, num_warps=1, num_stages=2)
  return SpmmConfig(block_n=block_n, block_nnz=8, num_warps=1, num_stages=2, substeps=2)


def _spmm_kernel(order_ref, offsets_ref, data_ref, cols_ref, b_ref, out_ref, *, block_nnz: int,
                 block_n: int, n: int, num_rows: int, rows_per_program: int,
                 natural_order: bool, prefetch: str, substeps: int, row_splits: int,
                 fma_ptx: bool):
  first = pl.program_id(0) * rows_per_program
  # The last program's slots past row M - 1 repeat its first row: they compute and store the
  # same values to the same addresses (no padded order or output).
  rows = _rows.launch_slots(first, rows_per_program, num_rows)
  if not natural_order:
    rows = [order_ref[slot] for slot in rows]
  n_start = pl.program_id(1) * block_n
  columns = n_start + jnp.arange(block_n, dtype=jnp.int32)
  # Static: with N a multiple of the tile no column is masked, so Triton sees masks constant
  # along each B row and keeps the row loads vectorized.
  ragged_n = n % block_n != 0
  column_mask = columns < n if ragged_n else None
  starts = [offsets_ref[row] for row in rows]
  ends = [offsets_ref[row + 1] for row in rows]
  if row_splits > 1:
    # This program's share of each row: whole steps, the last share what is left (maybe none).
    step_entries = block_nnz * substeps
    shares = [_common.split_range(pl.program_id(2), (end - start + step_entries - 1)
                                  // step_entries, row_splits) for start, end in zip(starts, ends)]
    starts, ends = ([jnp.minimum(start + first * step_entries, end)
                     for start, end, (first, _) in zip(starts, ends, shares)],
                    [jnp.minimum(start + last * step_entries, end)
                     for start, end, (_, last) in zip(starts, ends, shares)])

  def valid_at(index, start, end):
    return start + index * block_nnz + jnp.arange(block_nnz, dtype=jnp.int32) < end

  def load_entries(index, start, end):
    """Step ``index``'s column indices and float32 values (0 past the row's end)."""
    position = start + index * block_nnz
    valid = valid_at(index, start, end)
    cols = plgpu.load(cols_ref.at[pl.ds(position, block_nnz)], mask=valid, other=0)
    values = plgpu.load(data_ref.at[pl.ds(position, block_nnz)], mask=valid, other=0)
    return cols, values.astype(jnp.float32)

  def load_tile(cols, valid):
    """The ``[block_nnz, block_n]`` rows of B at ``cols`` (0 where not ``valid``), float32."""
    # Index arrays on both axes (not a slice on the second), which interpret mode also accepts;
    # Triton still sees the column offsets as contiguous and vectorizes the row loads.
    tile_mask = (valid[:, None] & column_mask[None, :] if ragged_n
                 else jnp.broadcast_to(valid[:, None], (block_nnz, block_n)))
    return plgpu.load(b_ref.at[cols[:, None], columns[None, :]], mask=tile_mask,
                      other=0).astype(jnp.float32)

  # Per row, the loop carries the accumulator and what earlier steps loaded for this one:
  #   none:    (acc,)
  #   indices: (acc, cols, values) of this step
  #   tile:    (acc, tile, values) of this step, (cols, values) of the next
  def first_carry(start, end):
    acc = jnp.zeros((block_nnz, block_n), jnp.float32)
    if prefetch == "none":
      return (acc,)
    cols, values = load_entries(0, start, end)
    if prefetch == "indices":
      return (acc, cols, values)
    return (acc, load_tile(cols, valid_at(0, start, end)), values,
            *load_entries(1, start, end))

  def accumulate(acc, values, tile):
    """``acc + values[:, None] * tile``, fused multiply-adds."""
    return _common.multiply_add(jnp.broadcast_to(values[:, None], tile.shape), tile, acc,
                                ptx=fma_ptx)

  def row_step(index, carry, start, end):
    if prefetch == "none":
      (acc,) = carry
      loaded = []
      for offset in range(substeps):
        sub = index * substeps + offset
        cols, values = load_entries(sub, start, end)
        loaded.append((values, load_tile(cols, valid_at(sub, start, end))))
      for values, tile in loaded:  # every gather issued before the first FMA
        acc = accumulate(acc, values, tile)
      return (acc,)
    if prefetch == "indices":
      acc, cols, values = carry
      tile = load_tile(cols, valid_at(index, start, end))
      next_entries = load_entries(index + 1, start, end)
      return (accumulate(acc, values, tile), *next_entries)
    acc, tile, values, next_cols, next_values = carry
    next_tile = load_tile(next_cols, valid_at(index + 1, start, end))
    after_next = load_entries(index + 2, start, end)
    return (accumulate(acc, values, tile), next_tile, next_values, *after_next)

  def step(index, carries):
    return tuple(row_step(index, carry, start, end)
                 for carry, start, end in zip(carries, starts, ends))

  longest = ends[0] - starts[0]
  for start, end in zip(starts[1:], ends[1:]):
    longest = jnp.maximum(longest, end - start)
  steps = (longest + block_nnz * substeps - 1) // (block_nnz * substeps)
  carries = jax.lax.fori_loop(0, steps, step, tuple(
      first_carry(start, end) for start, end in zip(starts, ends)))
  for row, carry in zip(rows, carries):
    target = (out_ref.at[pl.program_id(2), row, pl.ds(n_start, block_n)] if row_splits > 1
              else out_ref.at[row, pl.ds(n_start, block_n)])
    plgpu.store(target, jnp.sum(carry[0], axis=0).astype(out_ref.dtype),
                mask=column_mask)  # None: every column in range


@functools.partial(jax.jit, static_argnames=("num_rows", "config", "interpret", "natural_order"))
def kernel_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, b: jax.Array, *,
              num_rows: int, config: SpmmConfig | None = None, interpret: bool = False,
              row_order: jax.Array | None = None, natural_order: bool = False) -> jax.Array:
  """``A @ B`` for a CSR matrix ``A`` ``[M, K]`` and a dense ``B`` ``[K, N]``.

  Args:
    data: ``[nse]`` float32, bfloat16 or float16, the stored values; entries at positions
      ``>= row_offsets[M]`` are padding and never read.
    col_indices: ``[nse]`` int32, the column (in ``[0, K)``) of each stored value.
    row_offsets: ``[M + 1]`` int32, row ``i`` holds positions ``row_offsets[i]:row_offsets[i+1]``.
    b: ``[K, N]``, the same dtype as ``data``.
    num_rows: ``M``.
    config: tile sizes; ``choose_config`` when None.
    interpret: run in Pallas interpret mode (any platform).
    row_order: optional ``[M]`` int32 permutation of the rows (the launch order); computed by
      ``_rows.rows_by_length`` inside this function when None, so a caller may cache it.
    natural_order: launch the rows in their natural order (no schedule computed, ``row_order``
      ignored): what ``rows_by_length`` gives anyway when ``_rows.natural_order_is_schedule``
      holds, which the CSR format checks when it is built on the host.

  Returns:
    ``[M, N]`` in ``data``'s dtype, accumulated in float32.
  """
  _rows.check_spmm_operands(data, col_indices, row_offsets, b, num_rows,
                            dense_name="b")
  n = b.shape[1]
  if num_rows == 0 or n == 0:
    return jnp.zeros((num_rows, n), data.dtype)
  config = config or choose_config(num_rows, b.shape[0], n, data.shape[0])
  if data.shape[0] == 0:  # nothing to gather; Triton cannot take an empty buffer
    return jnp.zeros((num_rows, n), data.dtype)
  if natural_order:
    row_order = row_offsets  # a placeholder operand: the kernel does not read it
  elif row_order is None:
    row_order = _rows.rows_by_length(row_offsets,
                                       max_row_length=min(b.shape[0], data.shape[0]))
  kernel = functools.partial(_spmm_kernel, block_nnz=config.block_nnz, block_n=config.block_n,
                             n=n, num_rows=num_rows, rows_per_program=config.rows_per_program,
                             natural_order=natural_order, prefetch=config.prefetch,
                             substeps=config.substeps, row_splits=config.row_splits,
                             fma_ptx=not interpret)
  grid = (pl.cdiv(num_rows, config.rows_per_program), pl.cdiv(n, config.block_n))
  split = config.row_splits > 1
  out = pl.pallas_call(
      kernel,
      out_shape=_common.split_k_shape((num_rows, n), data.dtype, config.row_splits),
      grid=grid + ((config.row_splits,) if split else ()),
      compiler_params=plgpu.CompilerParams(num_warps=config.num_warps,
                                           num_stages=config.num_stages),
      interpret=interpret,
  )(row_order, row_offsets, data, col_indices, b)
  return _common.sum_splits(out, data.dtype)


@functools.partial(jax.jit, static_argnames=("num_rows",))
def reference_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, b: jax.Array,
                 *, num_rows: int) -> jax.Array:
  """``A @ B`` in plain ``jax.numpy`` (float32 accumulation), same arguments as ``kernel_fn``."""
  rows = _rows.entry_rows(row_offsets, col_indices.shape[0])
  contributions = data.astype(jnp.float32)[:, None] * b[col_indices].astype(jnp.float32)
  out = jax.ops.segment_sum(contributions, rows, num_segments=num_rows)
  return out.astype(data.dtype)
