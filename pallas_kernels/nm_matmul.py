"""N:M matmul on the tensor cores: ``W @ X`` for W with n of every m values kept along K.

W [M, K] is stored compressed: ``data`` [M, K / m * n] values and ``indices`` [M, K / m * n]
(uint8) positions within each group of m. A program computes a [block_m, block_n] tile of the
output over one slice of K: for every [block_m, block_k] tile of W in its slice it loads the
compressed values and positions (n strided loads of [block_m, block_k / m], together one
contiguous span; or, with ``contiguous_loads``, one load split in registers), expands them in
registers into the dense tile by comparing positions with ``iota(m)``, and multiplies it with X's
[block_k, block_n] rows: ``dot`` on the tensor cores (float32 accumulation), or, for
``block_n = 1`` (one column, decoding), a float32 multiply-and-row-sum that reads only the column
itself. Only ``n / m`` of W's values (plus one byte of position each, or 1/8 byte a 2:4 weight
with packed positions) are read.

Two other paths avoid the [block_m, groups, m] -> [block_m, block_k] reshape of the expansion:
- ``gather_column`` (decoding, N <= 16): no expansion; each kept value is multiplied with the
  entries of X's row at its column (the block_n entries of that row lie side by side), so the
  work per step is ``block_m * block_k / m * n * block_n`` multiply-adds and the bytes of W bound
  the time;
- ``position_dots`` (prefill; with ``joined_tile``, decoding with 2-16 columns): W's tile is
  expanded as m [block_m, block_k / m] tiles, one per in-group position p (selects on the
  positions, all 2-D), each fed to ``dot`` with X's rows p, p + m, p + 2m, ... of the step (a
  strided load): m dots of K = block_k / m. ``joined_tile`` interleaves the m tiles with joins
  (no data moves) into the dense [block_m, block_k] tile for one ``dot`` with X's contiguous
  rows. ``paired_values`` reads a group's two 16-bit values (n = 2) as one uint32.

Split-K (``num_splits > 1``): the grid is (row tiles, column tiles, splits); every split walks its
own K slice and writes float32 partial sums, added afterwards. Decoding (N <= 32) is memory-bound,
and a few hundred row tiles walking all of K one after another leave most of the H100's memory
bandwidth idle (round 1: 4096x14336 at N = 1 took 1678 us, dense 65 us); splits multiply the
programs streaming W at once.

This does not use the sparse tensor cores (``mma.sp``): they are out of Pallas' reach in jax
0.11.2 (see BUILD_NOTES.md, "GPU: sparse tensor cores from Pallas").
Triton constraints (``gpu_supported``): m a power of two; block_m, block_k powers of two >= 16
with m dividing block_k; block_n 1 or a power of two >= 16.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common, _rows
from pallas_kernels.nm_packing import pack_indices, packed_layout  # noqa: F401 (re-exported)


@dataclasses.dataclass(frozen=True)
class NmMatmulConfig:
  """Tile sizes (rows of W, columns of W per step, columns of X per program; ``block_n = 1`` is
  the one-column path without ``dot``), the number of K slices, how a step's values are loaded
  (``contiguous_loads``: one [block_m, block_k / m * n] load split in registers, n a power of two;
  else n loads with stride n), and Triton launch parameters.

  ``gather_column`` (n a power of two, any block_n): no expansion at all; each kept value is
  multiplied with X's block_n entries at its own column (one row of X, contiguous), gathered from
  X (cached), so a step does ``block_m * block_k / m * n * block_n`` multiply-adds instead of
  ``block_m * block_k`` compares and selects; keep that product near 8192 (registers).
  ``position_dots`` (block_k / m a power of two >= 16): the expansion as m per-position tiles and
  m dots (see the module docstring); for prefill.
  ``prefetch`` (with either of the two): step k + 1's values and positions are loaded before step
  k's arithmetic, carried in the loop (Triton's pipelining covers ``dot`` operands only).
  ``paired_values`` (``position_dots``, n = 2, 16-bit values): a group's two values are read as
  one uint32 word ([block_m, block_k / m] words a step, one contiguous load) and split with a
  shift, a truncation and a bitcast, instead of two loads with stride 2 of 16-bit values; byte
  positions (not packed) are read the same way, a group's two as one uint16.
  ``joined_tile`` (``position_dots``, m a power of two): the m per-position tiles interleaved
  with joins into W's dense [block_m, block_k] tile, multiplied by X's step rows in one dot (X
  read contiguously, a direct ``dot`` operand), instead of m dots of K = block_k / m.
  """

  block_m: int = 64
  block_k: int = 128
  block_n: int = 16
  num_splits: int = 1
  contiguous_loads: bool = False
  gather_column: bool = False
  position_dots: bool = False
  prefetch: bool = False
  paired_values: bool = False
  joined_tile: bool = False
  num_warps: int = 4
  num_stages: int = 3


def gpu_supported(nm: tuple[int, int], config: NmMatmulConfig) -> bool | str:
  """True when the Triton backend can compile this call, else the reason why not."""
  n, m = nm
  if not _common.is_power_of_two(m):
    return f"m={m} must be a power of two for the Triton backend"
  if config.block_k % m:
    return f"block_k={config.block_k} must be a multiple of m={m}"
  if config.contiguous_loads and not _common.is_power_of_two(n):
    return f"contiguous_loads needs n a power of two for the Triton backend, got n={n}"
  if config.gather_column and not _common.is_power_of_two(n):
    return f"gather_column needs n a power of two for the Triton backend, got n={n}"
  if config.gather_column and config.position_dots:
    return "gather_column and position_dots exclude each other"
  if config.paired_values and (n != 2 or not config.position_dots):
    return f"paired_values needs n=2 and position_dots, got n={n}"
  if config.joined_tile and not config.position_dots:
    return "joined_tile needs position_dots"
  if config.gather_column:  # no dot: powers of two only (Triton's tensor shapes)
    for name in ("block_m", "block_k", "block_n"):
      if not _common.is_power_of_two(getattr(config, name)):
        return f"{name}={getattr(config, name)} must be a power of two for the Triton backend"
    return True
  if config.position_dots:
    return _common.check_dot_tiles(block_m=config.block_m, block_k_over_m=config.block_k // m,
                                   block_n=config.block_n)
  tiles = dict(block_m=config.block_m, block_k=config.block_k)
  if config.block_n != 1:
    tiles["block_n"] = config.block_n
  return _common.check_dot_tiles(**tiles)


def packed_fits(nm: tuple[int, int], config: NmMatmulConfig) -> bool:
  """Whether ``kernel_fn`` can read packed positions (``pack_indices``) with this config: the
  pattern fits a word and a K step covers whole words (block_k a multiple of m * g)."""
  try:
    _, per_word = packed_layout(nm)
  except ValueError:
    return False
  return config.block_k % (nm[1] * per_word) == 0


def _interleave(parts: list[jax.Array]) -> jax.Array:
  """[..., len(parts)] with ``out[..., i] = parts[i]`` built with joins only (Triton keeps a
  join's new axis in the thread's registers, so no data moves): len(parts) a power of two;
  ``join(evens, odds)`` puts parts[2f + j] at flat index 2f + j."""
  if len(parts) == 1:
    return parts[0][..., None]
  evens, odds = _interleave(parts[0::2]), _interleave(parts[1::2])
  joined = jnp.stack([evens, odds], axis=-1)
  return joined.reshape(*joined.shape[:-2], len(parts))


def check_operands(data: jax.Array, indices: jax.Array, *, shape: tuple[int, int],
                   nm: tuple[int, int], indices_packed: bool) -> None:
  """An N:M matrix's arrays for ``kernel_fn`` and ``expand_fn``: data [M, K / m * n] of a kernel
  value dtype, K a multiple of m, and positions of the same shape (integers) or, packed, uint32
  [M, ceil(K / m / g)]. Raises ValueError/TypeError naming the argument."""
  n, m = nm
  num_rows, num_k = shape
  if not 0 < n <= m:
    raise ValueError(f"nm must be (n, m) with 0 < n <= m, got {nm}")
  if num_k % m:
    raise ValueError(f"shape[1] = K = {num_k} must be a multiple of m = {m}")
  _rows.check_value_dtype("data", data)
  if data.shape != (num_rows, num_k // m * n):
    raise ValueError(f"data must be [M, K / m * n] = {(num_rows, num_k // m * n)}, got "
                     f"{tuple(data.shape)}")
  if indices_packed:
    words = -(-(num_k // m) // packed_layout(nm)[1])
    if indices.dtype != jnp.uint32 or indices.shape != (num_rows, words):
      raise ValueError(f"packed indices must be uint32 {(num_rows, words)}, got {indices.dtype} "
                       f"{tuple(indices.shape)}")
  elif not jnp.issubdtype(indices.dtype, jnp.integer) or indices.shape != data.shape:
    raise ValueError(f"indices must be integers of data's shape {tuple(data.shape)}, got "
                     f"{indices.dtype} {tuple(indices.shape)}")


def kernel_fn(data: jax.Array, indices: jax.Array, dense: jax.Array, *, shape: tuple[int, int],
              nm: tuple[int, int], config: NmMatmulConfig = NmMatmulConfig(),
              indices_packed: bool = False, interpret: bool = False) -> jax.Array:
  """``W @ X`` for an N:M matrix W.

  Args:
    data: [M, K / m * n] kept values (float16, bfloat16 or float32).
    indices: uint8 (or any integer) [M, K / m * n], position of each value in its group; or,
      with ``indices_packed``, ``pack_indices``' uint32 [M, ceil(K / m / g)].
    dense: X [K, N] of data's dtype.
    shape: (M, K) of W; K a multiple of m.
    nm: (n, m).
    config: tile sizes and splits; block_k must be a multiple of m (packed: of m * g).
    indices_packed: whether ``indices`` come from ``pack_indices``.
    interpret: run in the Pallas interpreter (any platform).

  Returns:
    [M, N] of data's dtype, accumulated in float32.
  """
  n, m = nm
  num_rows, num_k = shape
  num_n = dense.shape[1]
  block_m, block_k, block_n = config.block_m, config.block_k, config.block_n
  if block_k % m:
    raise ValueError(f"config.block_k={block_k} must be a multiple of m={m}")
  if config.num_splits < 1:
    raise ValueError(f"config.num_splits={config.num_splits} must be >= 1")
  if config.gather_column and config.position_dots:
    raise ValueError("config.gather_column and config.position_dots exclude each other")
  if config.prefetch and not (config.gather_column or config.position_dots):
    raise ValueError("config.prefetch needs config.gather_column or config.position_dots")
  if config.paired_values and (n != 2 or not config.position_dots or data.dtype.itemsize != 2):
    raise ValueError(f"config.paired_values needs n=2, config.position_dots and 16-bit values, "
                     f"got n={n}, position_dots={config.position_dots}, data {data.dtype}")
  if config.joined_tile and not config.position_dots:
    raise ValueError("config.joined_tile needs config.position_dots")
  check_operands(data, indices, shape=shape, nm=nm, indices_packed=indices_packed)
  value_dtype = data.dtype
  groups = block_k // m
  bits, per_word = packed_layout(nm) if indices_packed else (0, 1)
  position_mask = (1 << bits) - 1
  if groups % per_word:
    raise ValueError(f"config.block_k={block_k} must be a multiple of m * {per_word} = "
                     f"{m * per_word} for packed {n}:{m} indices")
  padded_rows = pl.cdiv(num_rows, block_m) * block_m
  padded_k = pl.cdiv(num_k, block_k) * block_k
  num_steps = padded_k // block_k
  num_splits = min(config.num_splits, num_steps)
  if (padded_rows, padded_k) != (num_rows, num_k):
    # A copy of W, only for shapes that are not multiples of the tiles. Padding values are
    # zeros, so whatever positions the padding indices give, they add nothing.
    index_columns = padded_k // m // per_word if indices_packed else padded_k // m * n
    data = jnp.pad(data, ((0, padded_rows - num_rows), (0, (padded_k - num_k) // m * n)))
    indices = jnp.pad(indices, ((0, padded_rows - num_rows),
                                (0, index_columns - indices.shape[1])))
  dense = _common.pad_columns(_common.pad_rows(dense, padded_k), block_n)
  num_padded_n = dense.shape[1]
  if config.gather_column:
    dense = dense.reshape(-1)  # gathered by flat index: row * num_padded_n + column
  # position_dots reads each group's word at a computed flat index (no in-register reshape).
  flat_indices = indices_packed and config.position_dots
  words_per_row = indices.shape[1]
  if flat_indices:
    indices = indices.reshape(-1)
  precision = _common.dot_precision(value_dtype)
  if config.paired_values:  # one uint32 word a group: slot 0 in the low half (little-endian)
    data = jax.lax.bitcast_convert_type(data.reshape(padded_rows, -1, 2), jnp.uint32)
  # Byte positions with paired values: a group's two read as one uint16 (slot 0 low).
  paired_positions = (config.paired_values and not indices_packed
                      and jnp.dtype(indices.dtype).itemsize == 1)
  if paired_positions:
    indices = jax.lax.bitcast_convert_type(
        indices.astype(jnp.uint8).reshape(padded_rows, -1, 2), jnp.uint16)

  def kernel(data_ref, indices_ref, dense_ref, out_ref):
    row_tile, col_tile = pl.program_id(0), pl.program_id(1)
    rows = pl.ds(row_tile * block_m, block_m)
    positions = jax.lax.broadcasted_iota(jnp.int32, (block_m, groups, m), 2)

    def packed_words(k_tile):
      """[block_m, groups / per_word] uint32 words of the step's positions."""
      return indices_ref[rows, pl.ds(k_tile * (groups // per_word), groups // per_word)]

    def packed_codes(k_tile, words=None):
      """[block_m, groups] codes of the step's groups (n positions of ``bits`` bits each)."""
      words = packed_words(k_tile) if words is None else words
      shifts = jax.lax.broadcasted_iota(jnp.uint32, (block_m, groups // per_word, per_word), 2)
      codes = words[:, :, None] >> (shifts * (n * bits))
      return codes.reshape(block_m, groups)

    def expand_contiguous(k_tile):
      """``expand`` from one load of the step's values (and positions): [block_m, groups, n]
      compared with iota(m) into [block_m, groups, n, m], summed over the n slots (at most one
      slot holds each position, so the sum is exact in any dtype)."""
      span = pl.ds(k_tile * groups * n, groups * n)
      values = data_ref[rows, span].reshape(block_m, groups, n)
      if indices_packed:
        slot_shifts = jax.lax.broadcasted_iota(jnp.uint32, (block_m, groups, n), 2) * bits
        where = (packed_codes(k_tile)[:, :, None] >> slot_shifts) & position_mask
      else:
        where = indices_ref[rows, span].reshape(block_m, groups, n)
      hits = where.astype(jnp.int32)[:, :, :, None] == jax.lax.broadcasted_iota(
          jnp.int32, (block_m, groups, n, m), 3)
      tile = jnp.sum(jnp.where(hits, values[:, :, :, None], jnp.zeros((), data_ref.dtype)),
                     axis=2, dtype=data_ref.dtype)
      return tile.reshape(block_m, block_k)

    def expand(k_tile):
      """The dense [block_m, block_k] tile of W at K step ``k_tile``."""
      if config.contiguous_loads:
        return expand_contiguous(k_tile)
      tile = jnp.zeros((block_m, groups, m), data_ref.dtype)
      codes = packed_codes(k_tile) if indices_packed else None
      for slot in range(n):
        stored = pl.ds(k_tile * groups * n + slot, groups, stride=n)
        values = data_ref[rows, stored]
        if indices_packed:
          where = ((codes >> (slot * bits)) & position_mask).astype(jnp.int32)
        else:
          where = indices_ref[rows, stored].astype(jnp.int32)
        tile = tile + jnp.where(where[:, :, None] == positions, values[:, :, None],
                                jnp.zeros((), data_ref.dtype))
      return tile.reshape(block_m, block_k)

    def gather_loads(k_tile):
      """The step's values [block_m, kept] and positions as stored (packed words or bytes)."""
      span = pl.ds(k_tile * groups * n, groups * n)
      return data_ref[rows, span], (packed_words(k_tile) if indices_packed
                                    else indices_ref[rows, span])

    def gather_products(k_tile, loaded, acc):
      """``acc`` plus [block_m, block_n] float32: the step's kept values times X's entries at
      their columns."""
      values, stored = loaded
      if indices_packed:
        slot_shifts = jax.lax.broadcasted_iota(jnp.uint32, (block_m, groups, n), 2) * bits
        codes = packed_codes(k_tile, stored)
        where = ((codes[:, :, None] >> slot_shifts) & position_mask).reshape(block_m, groups * n)
      else:
        where = stored
      slot = jax.lax.broadcasted_iota(jnp.int32, (block_m, groups * n), 1)
      group = slot >> (n.bit_length() - 1)
      columns = k_tile * block_k + group * m + where.astype(jnp.int32)
      if block_n == 1:
        x = dense_ref[columns * num_padded_n + col_tile].astype(jnp.float32)
        return acc + jnp.sum(values.astype(jnp.float32) * x, axis=1, keepdims=True)
      # [block_m, kept, block_n]: X's row at each kept value's column, block_n entries side by
      # side (contiguous: vector loads where Triton sees the alignment).
      starts = columns * num_padded_n + col_tile * block_n
      entry = jax.lax.broadcasted_iota(jnp.int32, (block_m, groups * n, block_n), 2)
      x = dense_ref[starts[:, :, None] + entry].astype(jnp.float32)
      return acc + jnp.sum(values.astype(jnp.float32)[:, :, None] * x, axis=1)

    def position_loads(k_tile):
      """The step's values (n [block_m, groups] arrays, one per slot) and positions as stored:
      each group's packed word [block_m, groups] (read at a computed flat index), or n byte
      arrays."""
      if config.paired_values:
        words = data_ref[rows, pl.ds(k_tile * groups, groups)]
        values = tuple(jax.lax.bitcast_convert_type(half.astype(jnp.uint16), value_dtype)
                       for half in (words & 0xFFFF, words >> 16))
      else:
        values = tuple(data_ref[rows, pl.ds(k_tile * groups * n + slot, groups, stride=n)]
                       for slot in range(n))
      if paired_positions:
        pairs = indices_ref[rows, pl.ds(k_tile * groups, groups)]
        return values, (pairs & 0xFF, pairs >> 8)
      if not flat_indices:
        return values, tuple(
            indices_ref[rows, pl.ds(k_tile * groups * n + slot, groups, stride=n)]
            for slot in range(n))
      row = row_tile * block_m + jax.lax.broadcasted_iota(jnp.int32, (block_m, groups), 0)
      group = jax.lax.broadcasted_iota(jnp.int32, (block_m, groups), 1)
      # per_word is a power of two: shifts and masks (jnp's // and % on int32 add selects).
      word_shift = per_word.bit_length() - 1
      return values, indices_ref[row * words_per_row + k_tile * (groups // per_word)
                                 + (group >> word_shift)]

    def slot_positions(stored):
      """n [block_m, groups] int32 arrays: slot s's position in each of the step's groups."""
      if not flat_indices:
        return [where.astype(jnp.int32) for where in stored]
      group = jax.lax.broadcasted_iota(jnp.int32, (block_m, groups), 1)
      codes = stored >> ((group & (per_word - 1)) * (n * bits)).astype(jnp.uint32)
      return [((codes >> (slot * bits)) & position_mask).astype(jnp.int32)
              for slot in range(n)]

    def position_tiles(loaded):
      """m [block_m, groups] tiles: W's values at in-group position p of each group."""
      values, stored = loaded
      where = slot_positions(stored)
      zero = jnp.zeros((), value_dtype)
      tiles = []
      for position in range(m):
        # At most one slot of a group holds each position: one select a slot, no adds. Positions
        # strictly increase within a group (the format's invariant), so slot s holds one of
        # s ... m - n + s: other slots are not compared.
        tile = zero
        for slot in range(max(0, position - (m - n)), min(n, position + 1)):
          tile = jnp.where(where[slot] == position, values[slot], tile)
        tiles.append(tile)
      return tiles

    def position_products(k_tile, loaded, acc):
      """``acc`` plus the step's product as m dots: W's values at in-group position p
      [block_m, groups] times X's rows p, p + m, ... of the step [groups, block_n]."""
      columns = pl.ds(col_tile * block_n, block_n)
      for position, tile in enumerate(position_tiles(loaded)):
        rhs = dense_ref[pl.ds(k_tile * block_k + position, groups, stride=m), columns]
        acc = acc + jnp.dot(tile, rhs, precision=precision, preferred_element_type=jnp.float32)
      return acc

    def joined_products(k_tile, loaded, acc):
      """``acc`` plus the step's product as one dot: the m per-position tiles interleaved into
      W's dense [block_m, block_k] tile (joins, no reshape across threads) times X's
      [block_k, block_n] rows of the step."""
      tile = _interleave(position_tiles(loaded)).reshape(block_m, block_k)
      rhs = dense_ref[pl.ds(k_tile * block_k, block_k), pl.ds(col_tile * block_n, block_n)]
      return acc + jnp.dot(tile, rhs, precision=precision, preferred_element_type=jnp.float32)

    position_step = joined_products if config.joined_tile else position_products

    def accumulate(k_tile, acc):
      if config.gather_column:
        return gather_products(k_tile, gather_loads(k_tile), acc)
      if config.position_dots:
        return position_step(k_tile, position_loads(k_tile), acc)
      k_rows = pl.ds(k_tile * block_k, block_k)
      if block_n == 1:
        column = dense_ref[k_rows, col_tile].astype(jnp.float32)
        products = expand(k_tile).astype(jnp.float32) * column[None, :]
        return acc + jnp.sum(products, axis=1, keepdims=True)
      rhs = dense_ref[k_rows, pl.ds(col_tile * block_n, block_n)]
      return acc + jnp.dot(expand(k_tile), rhs, precision=precision,
                           preferred_element_type=jnp.float32)

    if num_splits == 1:
      first, last = 0, num_steps
    else:
      first, last = _common.split_range(pl.program_id(2), num_steps, num_splits)
    acc = jnp.zeros((block_m, block_n), jnp.float32)
    if config.prefetch:
      # Step k + 1's loads are issued before step k's arithmetic (carried in the loop), so their
      # latency overlaps it; the last step reloads a valid step, unused. An empty split range
      # (first > last) runs no step.
      load, products = ((gather_loads, gather_products) if config.gather_column
                        else (position_loads, position_step))
      clamp = lambda k_tile: jnp.minimum(k_tile, num_steps - 1)  # noqa: E731

      def prefetched(k_tile, carry):
        acc, loaded = carry
        upcoming = load(clamp(k_tile + 1))
        return products(k_tile, loaded, acc), upcoming

      acc, _ = jax.lax.fori_loop(first, last, prefetched, (acc, load(clamp(first))))
    else:
      acc = jax.lax.fori_loop(first, last, accumulate, acc)
    out_ref[...] = acc.astype(out_ref.dtype)

  out_shape, out_spec = _common.split_k_output((padded_rows, num_padded_n), value_dtype,
                                               num_splits, (block_m, block_n))
  whole = pl.no_block_spec
  out = pl.pallas_call(
      kernel,
      out_shape=out_shape,
      grid=(padded_rows // block_m, num_padded_n // block_n, num_splits),
      in_specs=[whole, whole, whole],
      out_specs=out_spec,
      compiler_params=plt.CompilerParams(num_warps=config.num_warps,
                                         num_stages=config.num_stages),
      interpret=interpret,
      name="jsparse_nm_matmul",
  )(data, indices, dense)
  return _common.sum_splits(out, value_dtype)[:num_rows, :num_n]


def expand_fn(data: jax.Array, indices: jax.Array, *, shape: tuple[int, int], nm: tuple[int, int],
              indices_packed: bool = False) -> jax.Array:
  """W as a dense [M, K] array of data's dtype, in plain ``jax.numpy`` that XLA fuses into one
  elementwise pass (no scatter): each of the m positions of a group takes the value of the slot
  whose position equals it, or 0.

  For prefill, where the product is compute-bound: W expanded once a call and multiplied by
  XLA's dense product does the expansion once, where ``kernel_fn`` redoes it for every column
  tile of X (see ``jsparse._gpu.structured``).

  Args:
    data: [M, K / m * n] kept values.
    indices: uint8 positions [M, K / m * n], or with ``indices_packed`` the packed words
      (``pack_indices``, uint32 [M, ceil(K / m / g)]).
    shape: (M, K) of W, K a multiple of m.
    nm: (n, m).
    indices_packed: whether ``indices`` holds packed words.
  """
  check_operands(data, indices, shape=shape, nm=nm, indices_packed=indices_packed)
  n, m = nm
  num_rows, groups = shape[0], shape[1] // m
  values = data.reshape(num_rows, groups, n)
  if indices_packed:
    bits, per_word = packed_layout(nm)
    words = jnp.repeat(indices, per_word, axis=1)[:, :groups]  # [M, groups], a group's word
    shifts = ((jnp.arange(groups, dtype=jnp.uint32) % per_word)[:, None] * (n * bits)
              + jnp.arange(n, dtype=jnp.uint32)[None, :] * bits)
    positions = (words[:, :, None] >> shifts[None]) & jnp.uint32((1 << bits) - 1)
  else:
    positions = indices.reshape(num_rows, groups, n)
  positions = positions.astype(jnp.int32)[..., None]  # [M, groups, n, 1]
  slots = positions == jnp.arange(m, dtype=jnp.int32)  # [M, groups, n, m]
  dense = jnp.sum(jnp.where(slots, values[..., None], jnp.zeros((), data.dtype)), axis=2,
                  dtype=data.dtype)
  return dense.reshape(num_rows, groups * m)


def reference_fn(data: jax.Array, indices: jax.Array, dense: jax.Array, *,
                 shape: tuple[int, int], nm: tuple[int, int]) -> jax.Array:
  """The same product in plain ``jax.numpy`` (float32 accumulation), through the dense matrix."""
  n, m = nm
  columns = (jnp.arange(indices.shape[1]) // n * m)[None, :] + indices.astype(jnp.int32)
  matrix = jnp.zeros(shape, jnp.float32).at[jnp.arange(shape[0])[:, None], columns].set(
      data.astype(jnp.float32))
  out = jnp.dot(matrix, dense.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  return out.astype(data.dtype)
