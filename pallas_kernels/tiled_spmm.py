"""Tiled-bitmap SpMM, "load as sparse, compute as dense": ``W @ X`` for unstructured sparse W.

W [M, K] is stored in [tm, tk] tiles (see ``jsparse.formats.tiled``): per tile row a bitmap
(``bitmaps`` uint32 [Mt, Kt, tm, tk / 32]) and the offset of its packed values (``row_offsets``
[Mt, Kt, tm]) into ``data`` [nse]. One program computes a [tm, block_n] tile of the output: for each
tile of its tile row it loads the bitmap words, finds for every element of the [tm, tk] tile
whether its bit is set and its rank among the set bits of its tile row (the population count of
the bits below it in its word plus those of the words before: elementwise, ``popc`` on the GPU),
gathers the packed values at ``offset + rank``, and multiplies the dense tile with X's
[tk, block_n] rows on the tensor cores (float32 accumulation), or, for one column of X
(``fma_products``), with X's entries in float32 FMAs, summed across the tile row at the end.
With ``num_splits > 1`` the grid gains a split axis: each split walks one slice of the tile row
and writes float32 partial sums, added afterwards (decoding needs the extra programs).
Bytes read from W: the nonzero values, 1 bit per element and one offset per tile row (at 70%
sparsity bf16 0.39x the dense bytes). The expansion, a gathered load (and with a ``dot`` a
shared-memory store) for every element, binds it instead: on an H100 it runs at 0.4-0.86x dense
at decoding (experiments/results/h100-2026-11-26-tiled-pipeline/).

Triton constraints (``gpu_supported``): tm, tk, block_n powers of two, tm and block_n >= 16
(block_n = 1 with ``fma_products``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common, _rows

WORD_BITS = 32


RANKS = ("popc", "scan")
ABSENT_READS = ("zero", "masked", "neighbour")


@dataclasses.dataclass(frozen=True)
class TiledSpmmConfig:
  """Columns of X per program, K slices (split-K: float32 partial sums added afterwards, for
  skinny X where row tiles alone are too few programs to stream W at bandwidth), how each value's
  rank within its tile row is found, and Triton launch parameters (the tile shape is the
  format's).

  ``ranks``: "popc" (default) counts the set bits below each element in its own bitmap word
  (``popc.b32`` through inline PTX on the GPU, ``_common.popcount32`` in the interpreter) plus
  the bits of the words before it: elementwise, about a dozen instructions an element. "scan"
  is the first kernel's ``cumsum`` across the tile row (a Triton scan): H100, 2026-11-25,
  200-330 us on 4096x14336 / 14336x4096 bf16 at every sparsity, 0.2-0.35x dense. (Two K tiles
  a loop iteration measured -7% to +8%: experiments/results/h100-2026-11-25-tiled-popc/.)"""

  block_n: int = 16
  num_splits: int = 1
  ranks: str = "popc"
  num_warps: int = 4
  num_stages: int = 3
  # Software pipelining by hand ("popc" only): each loop step loads the bitmap words and offsets
  # of the tile two steps ahead and issues the gather of the next tile's values before the
  # current tile's dot, so the two dependent loads (words, then values) of a tile overlap the
  # work of the tiles before it. Triton pipelines only loads that feed a dot directly.
  pipelined: bool = False
  # What the gather ("popc") does for an element whose bit is clear: "zero" reads data[0] and
  # zeroes it with a select; "masked" predicates the lane off (no memory request, 0 loaded);
  # "neighbour" reads the next stored value's position (clamped to the last), beside the
  # present lanes' reads, then zeroes it. data[0] is far from the other lanes' values, so a
  # warp's read touches one more cache line.
  absent_reads: str = "zero"
  # N = 1 (block_n = 1) without a dot: each thread multiplies its elements of the expanded tile
  # with X's entries and keeps float32 sums per element across the K steps (FMA through inline
  # PTX); one sum across the tile row at the end. The dot's operand takes a layout change through
  # shared memory every step (a store an element); this takes none.
  fma_products: bool = False

  def __post_init__(self):
    if self.ranks not in RANKS:
      raise ValueError(f"ranks={self.ranks!r} must be one of {RANKS}")
    if self.absent_reads not in ABSENT_READS:
      raise ValueError(f"absent_reads={self.absent_reads!r} must be one of {ABSENT_READS}")
    if self.pipelined and self.ranks != "popc":
      raise ValueError("pipelined=True needs ranks='popc'")
    if self.fma_products and self.block_n != 1:
      raise ValueError(f"fma_products=True needs block_n=1 (N = 1), got {self.block_n}")
    if self.num_splits < 1:
      raise ValueError(f"num_splits={self.num_splits} must be >= 1")


def check_operands(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, *,
                   shape: tuple[int, int]) -> None:
  """A tiled matrix's arrays for ``kernel_fn`` and ``expand_fn``: data [nse] of a kernel value
  dtype, bitmaps uint32 [Mt, Kt, tm, tk / 32], row_offsets integers [Mt, Kt, tm], and a shape
  the tiles cover. Raises ValueError/TypeError naming the argument."""
  _rows.check_value_dtype("data", data)
  if data.ndim != 1:
    raise ValueError(f"data must be 1-D [nse], got shape {tuple(data.shape)}")
  if bitmaps.ndim != 4 or bitmaps.dtype != jnp.uint32:
    raise ValueError(f"bitmaps must be uint32 [Mt, Kt, tm, tk / 32], got {bitmaps.dtype} "
                     f"{tuple(bitmaps.shape)}")
  grid_m, grid_k, tm, words = bitmaps.shape
  if (not jnp.issubdtype(row_offsets.dtype, jnp.integer)
      or row_offsets.shape != (grid_m, grid_k, tm)):
    raise ValueError(f"row_offsets must be integers [Mt, Kt, tm] = {(grid_m, grid_k, tm)}, got "
                     f"{row_offsets.dtype} {tuple(row_offsets.shape)}")
  if not (0 <= shape[0] <= grid_m * tm and 0 <= shape[1] <= grid_k * words * WORD_BITS):
    raise ValueError(f"shape {tuple(shape)} must lie within the tiles' "
                     f"{(grid_m * tm, grid_k * words * WORD_BITS)}")


def _tile_values(data_ref, words_of_rows, offsets, *, tm: int, tk: int, popcount,
                 absent_reads: str):
  """One [tm, tk] tile's elements from its bitmap: ([tm, tk] values of ``data_ref`` gathered at
  each element's rank, [tm, tk] bool, its bit set). ``words_of_rows``: the tile rows' bitmap
  words (tk / 32 arrays [tm] uint32); ``offsets``: [tm] int32, each tile row's first value.
  An element's rank is the population count of the bits below it in its word plus those of the
  words before (elementwise). Absent elements' values are 0 with ``absent_reads="masked"``, else
  whatever was read (see ``TiledSpmmConfig.absent_reads``): mask them."""
  words = tk // WORD_BITS
  columns = jax.lax.broadcasted_iota(jnp.int32, (tm, tk), 1)
  bit_of_column = jnp.ones((), jnp.uint32) << (columns % WORD_BITS).astype(jnp.uint32)
  word_of_column = columns // WORD_BITS
  word = jnp.broadcast_to(words_of_rows[0][:, None], (tm, tk))
  before = jnp.zeros((tm, tk), jnp.int32)
  running = popcount(words_of_rows[0])
  for w in range(1, words):
    in_word = word_of_column == w
    word = jnp.where(in_word, words_of_rows[w][:, None], word)
    before = jnp.where(in_word, running[:, None], before)
    if w + 1 < words:
      running = running + popcount(words_of_rows[w])
  present = (word & bit_of_column) != 0
  positions = offsets[:, None] + before + popcount(word & (bit_of_column - 1))
  if absent_reads == "masked":
    return plt.load(data_ref.at[positions], mask=present, other=0), present
  if absent_reads == "neighbour":
    return data_ref[jnp.minimum(positions, data_ref.shape[0] - 1)], present
  return data_ref[jnp.where(present, positions, 0)], present


def gpu_supported(tile_shape: tuple[int, int], config: TiledSpmmConfig) -> bool | str:
  """True when the Triton backend can compile this call, else the reason why not."""
  if config.fma_products:  # no dot: only the tile's sizes are constrained
    return _common.check_dot_tiles(tm=tile_shape[0], tk=tile_shape[1])
  return _common.check_dot_tiles(tm=tile_shape[0], tk=tile_shape[1], block_n=config.block_n)


def expand_supported(tile_shape: tuple[int, int]) -> bool | str:
  """True when the Triton backend can compile ``expand_fn`` for tiles of ``tile_shape`` (no
  dot: each side a power of two), else the reason why not."""
  for name, size in zip(("tm", "tk"), tile_shape):
    if not _common.is_power_of_two(size):
      return f"{name}={size} must be a power of two for the Triton backend"
  return True


def kernel_fn(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, dense: jax.Array, *,
              shape: tuple[int, int], config: TiledSpmmConfig = TiledSpmmConfig(),
              interpret: bool = False) -> jax.Array:
  """``W @ X`` for a tiled-bitmap matrix W.

  Args:
    data: [nse] packed values (float16, bfloat16 or float32).
    bitmaps: uint32 [Mt, Kt, tm, tk / 32].
    row_offsets: int32/int64 [Mt, Kt, tm], position in data of each tile row's first value.
    dense: X [K, N] of data's dtype.
    shape: (M, K) of W.
    config: launch parameters.
    interpret: run in the Pallas interpreter (any platform).

  Returns:
    [M, N] of data's dtype, accumulated in float32.
  """
  check_operands(data, bitmaps, row_offsets, shape=shape)
  grid_m, grid_k, tm, words = bitmaps.shape
  tk = words * WORD_BITS
  num_n, block_n = dense.shape[1], config.block_n
  if data.shape[0] == 0:
    return jnp.zeros((shape[0], num_n), data.dtype)
  num_splits = min(config.num_splits, grid_k)
  dense = _common.pad_columns(_common.pad_rows(dense, grid_k * tk), block_n)
  precision = _common.dot_precision(data.dtype)
  popcount = _common.popcount32 if interpret else _common.popcount32_ptx

  def kernel(data_ref, bitmaps_ref, row_offsets_ref, dense_ref, out_ref):
    tile_row, col_tile = pl.program_id(0), pl.program_id(1)
    def load_bits(tile_col):
      """The tile row's bitmap words ([tm] each) and value offsets ([tm] int32) of one tile."""
      words_of_rows = tuple(bitmaps_ref[tile_row, tile_col, :, w] for w in range(words))
      return words_of_rows, row_offsets_ref[tile_row, tile_col, :].astype(jnp.int32)

    def gather(words_of_rows, offsets):
      """([tm, tk] values gathered at each element's rank, [tm, tk] bool: its bit is set); the
      values of absent elements are zero with ``absent_reads="masked"``, else must be masked."""
      return _tile_values(data_ref, words_of_rows, offsets, tm=tm, tk=tk, popcount=popcount,
                          absent_reads=config.absent_reads)

    def zero_absent(values, present):
      if config.absent_reads == "masked":
        return values
      return jnp.where(present, values, jnp.zeros((), data_ref.dtype))

    def expand_popc(tile_col):
      """[tm, tk] dense tile, each value's rank from population counts (elementwise)."""
      return zero_absent(*gather(*load_bits(tile_col)))

    shifts = jax.lax.broadcasted_iota(jnp.uint32, (tm, words, WORD_BITS), 2)

    def expand_scan(tile_col):
      """[tm, tk] dense tile, ranks by a cumsum across the tile row (the first kernel)."""
      bits = bitmaps_ref[tile_row, tile_col, :, :]
      mask = ((bits[:, :, None] >> shifts) & 1).astype(jnp.int32).reshape(tm, tk)
      ranks = jnp.cumsum(mask, axis=1) - mask
      offsets = row_offsets_ref[tile_row, tile_col, :].astype(jnp.int32)
      positions = jnp.where(mask != 0, offsets[:, None] + ranks, 0)
      return jnp.where(mask != 0, data_ref[positions], jnp.zeros((), data_ref.dtype))

    expand = expand_popc if config.ranks == "popc" else expand_scan

    def accumulate(tile_col, acc, tile=None):
      tile = expand(tile_col) if tile is None else tile
      if config.fma_products:
        x = dense_ref[pl.ds(tile_col * tk, tk), col_tile].astype(jnp.float32)
        return _common.multiply_add(tile.astype(jnp.float32), jnp.broadcast_to(x, (tm, tk)), acc,
                                    ptx=not interpret)
      rhs = dense_ref[pl.ds(tile_col * tk, tk), pl.ds(col_tile * block_n, block_n)]
      return acc + jnp.dot(tile, rhs, precision=precision, preferred_element_type=jnp.float32)

    def accumulate_pipelined(tile_col, carry):
      acc, values, present, next_bits = carry
      ahead = jnp.minimum(tile_col + 2, last - 1)
      carry_next = gather(*next_bits) + (load_bits(ahead),)
      return (accumulate(tile_col, acc, zero_absent(values, present)),) + carry_next

    if num_splits == 1:
      first, last = 0, grid_k
    else:
      first, last = _common.split_range(pl.program_id(2), grid_k, num_splits)
    acc = jnp.zeros((tm, tk) if config.fma_products else (tm, block_n), jnp.float32)
    if config.pipelined:
      # An empty split (first == last) runs no step; its clamped loads stay in bounds.
      start = jnp.minimum(first, grid_k - 1)
      carry = (acc,) + gather(*load_bits(start)) + (
          load_bits(jnp.minimum(start + 1, grid_k - 1)),)
      acc = jax.lax.fori_loop(first, last, accumulate_pipelined, carry)[0]
    else:
      acc = jax.lax.fori_loop(first, last, accumulate, acc)
    if config.fma_products:
      acc = jnp.sum(acc, axis=1, keepdims=True)
    out_ref[...] = acc.astype(out_ref.dtype)

  out_shape, out_spec = _common.split_k_output((grid_m * tm, dense.shape[1]), data.dtype,
                                               num_splits, (tm, block_n))
  whole = pl.no_block_spec
  out = pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(grid_m, dense.shape[1] // block_n, num_splits),
      in_specs=[whole, whole, whole, whole],
      out_specs=out_spec,
      compiler_params=plt.CompilerParams(num_warps=config.num_warps,
                                         num_stages=config.num_stages),
      interpret=interpret,
      name="jsparse_tiled_spmm",
  )(data, bitmaps, row_offsets, dense)
  return _common.sum_splits(out, data.dtype)[:shape[0], :num_n]


def expand_fn(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, *,
              shape: tuple[int, int], interpret: bool = False) -> jax.Array:
  """W as a dense [M, K] array of data's dtype: one program a [tm, tk] tile, its elements found
  from the bitmap as in ``kernel_fn`` (absent ones masked off, written as 0) and stored.

  For prefill, where the product is compute-bound: W expanded once a call and multiplied by
  XLA's dense product does the expansion once, where ``kernel_fn`` redoes it for every column
  tile of X on the CUDA cores beside the tensor cores (see ``jsparse._gpu.structured``).

  Args:
    data, bitmaps, row_offsets, shape: as ``kernel_fn``.
    interpret: run in the Pallas interpreter (any platform).
  """
  check_operands(data, bitmaps, row_offsets, shape=shape)
  grid_m, grid_k, tm, words = bitmaps.shape
  tk = words * WORD_BITS
  if data.shape[0] == 0:
    return jnp.zeros(shape, data.dtype)
  popcount = _common.popcount32 if interpret else _common.popcount32_ptx

  def kernel(data_ref, bitmaps_ref, row_offsets_ref, out_ref):
    tile_row, tile_col = pl.program_id(0), pl.program_id(1)
    words_of_rows = tuple(bitmaps_ref[tile_row, tile_col, :, w] for w in range(words))
    offsets = row_offsets_ref[tile_row, tile_col, :].astype(jnp.int32)
    values, _ = _tile_values(data_ref, words_of_rows, offsets, tm=tm, tk=tk, popcount=popcount,
                             absent_reads="masked")
    out_ref[...] = values

  whole = pl.no_block_spec
  out = pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((grid_m * tm, grid_k * tk), data.dtype),
      grid=(grid_m, grid_k),
      in_specs=[whole, whole, whole],
      out_specs=pl.BlockSpec((tm, tk), lambda i, j: (i, j)),
      compiler_params=plt.CompilerParams(num_warps=4, num_stages=1),
      interpret=interpret,
      name="jsparse_tiled_expand",
  )(data, bitmaps, row_offsets)
  return out[:shape[0], :shape[1]]


def reference_fn(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, dense: jax.Array,
                 *, shape: tuple[int, int]) -> jax.Array:
  """The same product in plain ``jax.numpy`` (float32 accumulation), through the dense matrix."""
  grid_m, grid_k, tm, words = bitmaps.shape
  tk = words * WORD_BITS
  mask = ((bitmaps[..., None] >> jnp.arange(WORD_BITS, dtype=jnp.uint32)) & 1).reshape(
      grid_m, grid_k, tm, tk).astype(jnp.int32)
  positions = row_offsets[..., None].astype(jnp.int32) + jnp.cumsum(mask, axis=-1) - mask
  values = jnp.concatenate([data, jnp.zeros((1,), data.dtype)]).astype(jnp.float32)
  tiles = jnp.where(mask != 0, values[jnp.where(mask != 0, positions, data.shape[0])], 0.0)
  matrix = tiles.transpose(0, 2, 1, 3).reshape(grid_m * tm, grid_k * tk)[:shape[0], :shape[1]]
  out = jnp.dot(matrix, dense.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  return out.astype(data.dtype)
