"""Balanced cuts and the split / join of matrices into per-device pieces (host only)."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from jsparse.sharding import partition
from tests.helpers import make_sparse, random_dense
from tests.sharding.meshes import host_dense, uneven_matrix


@given(st.lists(st.integers(0, 50), min_size=0, max_size=40), st.integers(1, 9))
def test_balanced_cuts_cover_in_order_and_balance(weights, parts):
  weights = np.asarray(weights, np.float64)
  cuts = partition.balanced_cuts(weights, parts)
  assert len(cuts) == parts + 1 and cuts[0] == 0 and cuts[-1] == len(weights)
  assert all(a <= b for a, b in zip(cuts, cuts[1:]))
  # Each cut lies at the unit boundary nearest its target, so no piece exceeds its fair share
  # by more than one unit's weight.
  loads = [weights[a:b].sum() for a, b in zip(cuts, cuts[1:])]
  heaviest = weights.max() if weights.size else 0.0
  assert max(loads) <= weights.sum() / parts + heaviest + 1e-9


def test_cuts_balance_stored_values_not_rows():
  rng = np.random.default_rng(0)
  matrix = uneven_matrix("csr", rng)
  cuts = partition.matrix_cuts(matrix, 0, 4)
  counts = np.diff(np.asarray(matrix.row_offsets))
  loads = [counts[a:b].sum() + (b - a) for a, b in zip(cuts, cuts[1:])]
  # The dense top rows make equal row counts (0, 9, 18, 27, 37) badly unbalanced.
  even = [counts[a:b].sum() + (b - a) for a, b in zip((0, 9, 18, 28), (9, 18, 28, 37))]
  assert max(loads) < max(even)
  assert max(loads) <= sum(loads) / 4 + counts.max() + 1


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr", "nm", "tiled"])
@pytest.mark.parametrize("grid", [(1, 1), (3, 1), (1, 4), (2, 3), (8, 1)])
def test_split_join_round_trip(fmt, grid):
  rng = np.random.default_rng(hash((fmt, grid)) % 2**32)
  matrix = uneven_matrix(fmt, rng, pad=2 if fmt in ("coo", "csr", "tiled") else 0)
  cuts = [partition.matrix_cuts(matrix, axis, parts) for axis, parts in enumerate(grid)]
  pieces = partition.split(matrix, *cuts)
  assert pieces.data.shape[:2] == grid
  dense = host_dense(matrix)[0]
  for i in range(grid[0]):
    for j in range(grid[1]):
      piece = host_dense(partition.piece(pieces, i, j))[0]
      block = dense[cuts[0][i]:cuts[0][i + 1], cuts[1][j]:cuts[1][j + 1]]
      np.testing.assert_array_equal(piece[:block.shape[0], :block.shape[1]], block)
      assert not piece[block.shape[0]:].any() and not piece[:, block.shape[1]:].any()
  joined = partition.join(pieces, *cuts, matrix.shape)
  assert type(joined) is type(matrix) and joined.shape == matrix.shape
  np.testing.assert_array_equal(host_dense(joined)[0], dense)


def test_join_gives_back_the_arrays_of_an_unpadded_csr():
  rng = np.random.default_rng(1)
  matrix = make_sparse("csr", random_dense(rng, (11, 7), 0.4, empty_rows=2))
  cuts = (partition.matrix_cuts(matrix, 0, 3), partition.matrix_cuts(matrix, 1, 2))
  joined = partition.join(partition.split(matrix, *cuts), *cuts, matrix.shape)
  for name in ("data", "col_indices", "row_offsets"):
    np.testing.assert_array_equal(np.asarray(getattr(joined, name)),
                                  np.asarray(getattr(matrix, name)))


def test_cuts_of_blocks_and_groups_fall_on_their_multiples():
  rng = np.random.default_rng(2)
  bsr, nm = uneven_matrix("bsr", rng), uneven_matrix("nm", rng)
  assert all(c % 3 == 0 for c in partition.matrix_cuts(bsr, 0, 5))
  assert all(c % 4 == 0 for c in partition.matrix_cuts(bsr, 1, 3))
  assert all(c % 4 == 0 for c in partition.matrix_cuts(nm, 1, 3))


def test_tiled_cuts_fall_on_tiles_and_end_at_the_matrix_edge():
  """37 x 70 in (4, 32) tiles: cuts at multiples of 4 rows and 32 columns, the last at 37 / 70
  (inside the last tile), balanced by stored values (the dense band of the top rows)."""
  tiled = uneven_matrix("tiled", np.random.default_rng(3))
  rows, cols = partition.matrix_cuts(tiled, 0, 4), partition.matrix_cuts(tiled, 1, 3)
  assert rows[-1] == 37 and cols[-1] == 70
  assert all(c % 4 == 0 for c in rows[:-1]) and all(c % 32 == 0 for c in cols[:-1])
  assert rows[1] < 37 // 4, "the dense top rows should make the first piece short"
  assert partition.check_cuts("row_cuts", rows, 4, 37, 4) == rows
  with pytest.raises(ValueError, match=r"multiples of 4 \(the block, tile or group size\) or 37"):
    partition.check_cuts("row_cuts", (0, 6, 20, 30, 37), 4, 37, 4)


@pytest.mark.parametrize("cuts, message", [
    ((0, 10, 37), "must hold 4 cuts"),
    ((1, 10, 20, 37), "must start at 0 and end at 37"),
    ((0, 20, 10, 37), "nondecreasing"),
])
def test_check_cuts_names_the_problem(cuts, message):
  with pytest.raises(ValueError, match=message):
    partition.check_cuts("row_cuts", cuts, 3, 37, 1)


def test_check_cuts_wants_multiples_of_the_block():
  with pytest.raises(ValueError, match="row_cuts must be multiples of 3"):
    partition.check_cuts("row_cuts", (0, 4, 9, 36), 3, 36, 3)
