"""Host-side partitioning of a sparse matrix into a grid of equally shaped pieces.

A matrix is cut into ``row_parts x col_parts`` contiguous pieces. The cuts are chosen to balance
work, not rows: a row (a column for the column cuts) weighs its number of stored values plus one,
the cost model of SpMM (``N`` multiply-adds per stored value, ``N`` writes per output row, or
``N`` reads of B per column). Uniform weights (N:M, where every row stores the same number of
values) give equal row counts; a matrix without entries is cut into equal rows.

Every piece is padded to the same shape, ``(max piece rows, max piece columns)``, and the same
number of stored entries, so the pieces stack into one array per index array with two leading
axes ``[row_parts, col_parts, ...]``: the layout that ``shard_map`` splits across a device mesh.
Padding follows the formats' conventions (``jsparse.formats._structure``): padding entries at the
end of each piece, empty padding rows, and for N:M zero-valued groups; padding adds nothing to any
product. Tiled matrices are cut on tile boundaries (the matrix's last rows or columns may end a
piece mid-tile) and each piece is re-tiled from its entries on the host.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from jsparse.formats import BSR, COO, CSR, NM, SparseMatrix, Tiled
from jsparse.formats import validation
from jsparse.formats.nm import packed_positions
from jsparse.formats.tiled import value_coordinates

FORMATS = ("coo", "csr", "bsr", "nm", "tiled")


@dataclasses.dataclass(frozen=True)
class Entries:
  """The stored entries of a matrix on the host, in row-major order, padding dropped.

  For BSR an entry is a block: ``rows``/``cols`` count blocks and ``values`` is [nse, bm, bk].
  """

  rows: np.ndarray
  cols: np.ndarray
  values: np.ndarray
  unit: tuple[int, int]  # (bm, bk) for BSR, (1, 1) otherwise.


def host_entries(matrix: SparseMatrix) -> Entries:
  """The stored entries of a concrete COO, CSR, BSR or Tiled matrix (numpy, row-major)."""
  if matrix.format in ("coo", "tiled"):
    if matrix.format == "tiled":
      rows, cols = (np.asarray(a) for a in value_coordinates(*matrix.index_arrays, matrix.shape))
    else:
      rows, cols = np.asarray(matrix.row_indices), np.asarray(matrix.col_indices)
    keep = rows < matrix.shape[0]
    rows, cols, values = rows[keep], cols[keep], np.asarray(matrix.data)[keep]
    order = np.lexsort((cols, rows))
    return Entries(rows[order], cols[order], values[order], (1, 1))
  if matrix.format in ("csr", "bsr"):
    offsets = np.asarray(matrix.row_offsets)
    end = int(offsets[-1])
    rows = np.repeat(np.arange(offsets.shape[0] - 1, dtype=offsets.dtype), np.diff(offsets))
    unit = matrix.block_shape if matrix.format == "bsr" else (1, 1)
    return Entries(rows, np.asarray(matrix.col_indices)[:end], np.asarray(matrix.data)[:end],
                   unit)
  raise ValueError(f"no host entries for format {matrix.format!r}")


def check_concrete(name: str, matrix: SparseMatrix) -> None:
  if not validation.is_concrete(matrix.data, *matrix.index_arrays):
    raise ValueError(f"{name} must hold concrete arrays (not traced inside jit): the cuts of a "
                     f"sharded matrix are chosen on the host from its nonzeros")


# -- where to cut ------------------------------------------------------------------------------
def balanced_cuts(weights: np.ndarray, parts: int) -> tuple[int, ...]:
  """Cuts ``len(weights)`` units into ``parts`` contiguous ranges of nearly equal total weight.

  Args:
    weights: float or int [units], nonnegative.
    parts: number of ranges, >= 1 (may exceed the number of units: some ranges are then empty).

  Returns:
    ``parts + 1`` nondecreasing ints from 0 to ``units``; range p is ``[cuts[p], cuts[p+1])``.
  """
  cumulative = np.concatenate([[0.0], np.cumsum(weights, dtype=np.float64)])
  targets = cumulative[-1] * np.arange(1, parts) / parts
  after = np.clip(np.searchsorted(cumulative, targets, side="left"), 1, len(weights))
  # Of the two unit boundaries around each target, take the nearer one.
  nearer_before = (targets - cumulative[after - 1]) < (cumulative[after] - targets)
  inner = np.maximum.accumulate(np.where(nearer_before, after - 1, after))
  return (0, *(int(c) for c in inner), len(weights))


def cut_unit(matrix: SparseMatrix, axis: int) -> int:
  """The rows (``axis=0``) or columns (``axis=1``) that cuts fall between multiples of: the
  block (BSR), the tile (Tiled), m (N:M columns), else 1."""
  if matrix.format == "bsr":
    return matrix.block_shape[axis]
  if matrix.format == "tiled":
    return matrix.tile_shape[axis]
  return matrix.m if matrix.format == "nm" and axis == 1 else 1


def unit_weights(matrix: SparseMatrix, axis: int) -> tuple[np.ndarray, int]:
  """(weight per unit along ``axis``, unit size in rows or columns) for the balanced cuts: a
  unit's stored values plus its rows or columns."""
  if matrix.format == "tiled":
    unit, length = cut_unit(matrix, axis), matrix.shape[axis]
    units = -(-length // unit)
    entries = host_entries(matrix)
    indices = (entries.rows if axis == 0 else entries.cols) // unit
    extent = np.minimum(unit, length - unit * np.arange(units))  # the last unit may be short
    return np.bincount(indices, minlength=units)[:units] + extent, unit
  if matrix.format == "nm":
    # Every row stores K / m * n values and every group of m columns M * n: uniform weights.
    if axis == 0:
      return np.ones(matrix.shape[0]), 1
    return np.ones(matrix.shape[1] // matrix.m), matrix.m
  entries = host_entries(matrix)
  unit = entries.unit[axis]
  units = matrix.shape[axis] // unit
  indices = entries.rows if axis == 0 else entries.cols
  per_unit = np.bincount(indices, minlength=units)[:units] * entries.unit[0] * entries.unit[1]
  return per_unit + unit, unit


def matrix_cuts(matrix: SparseMatrix, axis: int, parts: int) -> tuple[int, ...]:
  """Work-balanced cuts of a concrete matrix's rows (``axis=0``) or columns (``axis=1``).

  Cuts fall on multiples of the block size (BSR), of the tile (Tiled: the last at M or K) or of
  m (N:M columns).
  """
  weights, unit = unit_weights(matrix, axis)
  return tuple(min(unit * c, matrix.shape[axis]) for c in balanced_cuts(weights, parts))


def check_cuts(name: str, cuts: Sequence[int], parts: int, length: int, unit: int) -> tuple[int, ...]:
  """Validates user-given cuts: ``parts + 1`` nondecreasing multiples of ``unit`` (or ``length``
  itself) from 0 to ``length``."""
  cuts = tuple(int(c) for c in cuts)
  if len(cuts) != parts + 1:
    raise ValueError(f"{name} must hold {parts + 1} cuts (one more than the {parts} devices of "
                     f"its mesh axis), got {len(cuts)}")
  if cuts[0] != 0 or cuts[-1] != length:
    raise ValueError(f"{name} must start at 0 and end at {length}, got {cuts}")
  if any(b < a for a, b in zip(cuts, cuts[1:])):
    raise ValueError(f"{name} must be nondecreasing, got {cuts}")
  if any(c % unit and c != length for c in cuts):
    raise ValueError(f"{name} must be multiples of {unit} (the block, tile or group size) or "
                     f"{length}, got {cuts}")
  return cuts


def piece_extent(cuts: Sequence[int], unit: int) -> int:
  """The padded size of every piece: the largest range, at least one unit."""
  return max(unit, max(b - a for a, b in zip(cuts, cuts[1:])))


# -- cutting -----------------------------------------------------------------------------------
def split(matrix: SparseMatrix, row_cuts: Sequence[int], col_cuts: Sequence[int]) -> SparseMatrix:
  """The pieces of a concrete matrix, stacked: a matrix of the same format whose arrays carry two
  leading axes ``[len(row_cuts) - 1, len(col_cuts) - 1]``.

  Args:
    matrix: concrete COO, CSR, BSR or NM [M, K].
    row_cuts, col_cuts: validated cuts (see ``check_cuts``).

  Returns:
    A matrix whose ``shape`` is that of one padded piece and whose arrays are stacked; built
    without validation (its arrays are not those of a single matrix). Index the two leading axes
    to get one piece.
  """
  local_shape = (piece_extent(row_cuts, cut_unit(matrix, 0)),
                 piece_extent(col_cuts, cut_unit(matrix, 1)))
  ranges = [[(row_cuts[i], row_cuts[i + 1], col_cuts[j], col_cuts[j + 1])
             for j in range(len(col_cuts) - 1)] for i in range(len(row_cuts) - 1)]
  if matrix.format == "nm":
    children = _split_nm(matrix, ranges, local_shape)
  elif matrix.format == "tiled":
    children = _split_tiled(matrix, ranges, local_shape)
  else:
    children = _split_entries(matrix, ranges, local_shape)
  aux = (local_shape,) + tuple(getattr(matrix, name) for name in matrix._aux_names)
  return type(matrix)._tree_unflatten(aux, children)


def _split_entries(matrix, ranges, local_shape) -> tuple[np.ndarray, ...]:
  entries = host_entries(matrix)
  bm, bk = entries.unit
  index_dtype = matrix.index_arrays[0].dtype
  local_rows, local_cols = local_shape[0] // bm, local_shape[1] // bk
  selections = [[(entries.rows >= r0 // bm) & (entries.rows < r1 // bm)
                 & (entries.cols >= c0 // bk) & (entries.cols < c1 // bk)
                 for (r0, r1, c0, c1) in row] for row in ranges]
  nse = max(1, max(int(s.sum()) for row in selections for s in row))
  grid = (len(ranges), len(ranges[0]))
  data = np.zeros((*grid, nse, *entries.values.shape[1:]), entries.values.dtype)
  rows = np.full((*grid, nse), local_rows, index_dtype)
  cols = np.full((*grid, nse), local_cols, index_dtype)
  for i, row in enumerate(ranges):
    for j, (r0, r1, c0, c1) in enumerate(row):
      chosen = selections[i][j]
      count = int(chosen.sum())
      data[i, j, :count] = entries.values[chosen]
      rows[i, j, :count] = entries.rows[chosen] - r0 // bm
      cols[i, j, :count] = entries.cols[chosen] - c0 // bk
  if matrix.format == "coo":
    return data, rows, cols
  # Compressed formats: padding positions hold column 0 and lie past the last row offset.
  offsets = np.stack([np.stack([np.searchsorted(r, np.arange(local_rows + 1), side="left")
                                for r in row]) for row in rows]).astype(index_dtype)
  cols = np.where(rows == local_rows, 0, cols).astype(index_dtype)
  return data, cols, offsets


def _retile(entries: Entries, shape: tuple[int, int], like: Tiled, nse: int) -> Tiled:
  """A Tiled [shape] (``like``'s tile shape and index dtype, ``nse`` values with padding) of
  ``entries`` (element coordinates within ``shape``), built from a dense copy on the host."""
  dense = np.zeros(shape, entries.values.dtype)
  mask = np.zeros(shape, bool)
  dense[entries.rows, entries.cols] = entries.values
  mask[entries.rows, entries.cols] = True
  return Tiled.from_mask(dense, mask, tile_shape=like.tile_shape, nse=nse,
                         index_dtype=like.row_offsets.dtype)


def _split_tiled(matrix: Tiled, ranges, local_shape) -> tuple[np.ndarray, ...]:
  entries = host_entries(matrix)
  chosen = [[(entries.rows >= r0) & (entries.rows < r1) & (entries.cols >= c0)
             & (entries.cols < c1) for (r0, r1, c0, c1) in row] for row in ranges]
  nse = max(1, max(int(c.sum()) for row in chosen for c in row))
  pieces = [[_retile(Entries(entries.rows[c] - r0, entries.cols[c] - c0, entries.values[c],
                             (1, 1)), local_shape, matrix, nse)
             for c, (r0, _, c0, _) in zip(chosen_row, row)]
            for chosen_row, row in zip(chosen, ranges)]
  return tuple(np.stack([np.stack([np.asarray(getattr(one, name)) for one in row])
                         for row in pieces]) for name in ("data", *Tiled.index_names))


def _split_nm(matrix: NM, ranges, local_shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  n, m = matrix.n, matrix.m
  data, indices = np.asarray(matrix.data), np.asarray(matrix.indices)
  stored = (local_shape[0], local_shape[1] // m * n)
  grid = (len(ranges), len(ranges[0]))
  piece_data = np.zeros((*grid, *stored), data.dtype)
  # Padding groups keep a valid pattern (positions 0..n-1) with zero values.
  piece_indices = np.broadcast_to(np.tile(np.arange(n, dtype=np.uint8), stored[1] // n),
                                  (*grid, *stored)).copy()
  for i, row in enumerate(ranges):
    for j, (r0, r1, c0, c1) in enumerate(row):
      s0, s1 = c0 // m * n, c1 // m * n
      piece_data[i, j, :r1 - r0, :s1 - s0] = data[r0:r1, s0:s1]
      piece_indices[i, j, :r1 - r0, :s1 - s0] = indices[r0:r1, s0:s1]
  return piece_data, piece_indices, np.asarray(packed_positions(piece_indices, (n, m)))


# -- joining -----------------------------------------------------------------------------------
def join(pieces: SparseMatrix, row_cuts: Sequence[int], col_cuts: Sequence[int],
         shape: tuple[int, int]) -> SparseMatrix:
  """The inverse of ``split``: one matrix of the pieces' format and the global ``shape``.

  Args:
    pieces: stacked pieces with concrete arrays (leading axes ``[row parts, col parts]``).
    row_cuts, col_cuts: the cuts ``pieces`` was split with.
    shape: the global (M, K).

  Returns:
    A validated matrix holding every stored entry of the pieces (padding dropped; explicit zeros
    kept), in row-major order.
  """
  grid = (len(row_cuts) - 1, len(col_cuts) - 1)
  pieces = on_host(pieces)
  if pieces.format == "nm":
    n, m = pieces.n, pieces.m
    data = np.zeros((shape[0], shape[1] // m * n), pieces.data.dtype)
    indices = np.zeros(data.shape, np.uint8)
    for i in range(grid[0]):
      for j in range(grid[1]):
        r0, r1, c0, c1 = row_cuts[i], row_cuts[i + 1], col_cuts[j], col_cuts[j + 1]
        s0, s1 = c0 // m * n, c1 // m * n
        data[r0:r1, s0:s1] = pieces.data[i, j][:r1 - r0, :s1 - s0]
        indices[r0:r1, s0:s1] = pieces.indices[i, j][:r1 - r0, :s1 - s0]
    return NM((data, indices), shape=shape, n=n, m=m)
  bm, bk = pieces.block_shape if pieces.format == "bsr" else (1, 1)
  if pieces.format == "tiled":
    rows, cols, values = [], [], []
    for i in range(grid[0]):
      for j in range(grid[1]):
        found = host_entries(piece(pieces, i, j))
        rows.append(found.rows + row_cuts[i])
        cols.append(found.cols + col_cuts[j])
        values.append(found.values)
    entries = Entries(np.concatenate(rows), np.concatenate(cols), np.concatenate(values), (1, 1))
    return _retile(entries, shape, pieces, max(1, entries.values.size))
  parts = []
  for i in range(grid[0]):
    for j in range(grid[1]):
      found = host_entries(piece(pieces, i, j))
      parts.append((found.rows + row_cuts[i] // bm, found.cols + col_cuts[j] // bk,
                    found.values))
  rows, cols, values = (np.concatenate(arrays) for arrays in zip(*parts))
  order = np.lexsort((cols, rows))
  rows, cols, values = rows[order], cols[order], values[order]
  index_dtype = pieces.index_arrays[0].dtype
  if pieces.format == "coo":
    return COO((values, rows.astype(index_dtype), cols.astype(index_dtype)), shape=shape)
  offsets = np.searchsorted(rows, np.arange(shape[0] // bm + 1), side="left").astype(index_dtype)
  if pieces.format == "csr":
    return CSR((values, cols.astype(index_dtype), offsets), shape=shape)
  return BSR((values.reshape(-1, bm, bk), cols.astype(index_dtype), offsets), shape=shape)


def on_host(pieces: SparseMatrix) -> SparseMatrix:
  """The same (stacked) matrix with NumPy arrays: gathers sharded arrays to the host."""
  return jax.tree.map(np.asarray, pieces)


def piece(pieces: SparseMatrix, i: int, j: int) -> SparseMatrix:
  """Piece ``(i, j)`` of stacked pieces (arrays indexed on their two leading axes)."""
  return jax.tree.map(lambda array: array[i, j], pieces)
