"""BSR (``jsparse/formats/bsr.py``): block shapes, block layout, SciPy round trips, conversions.

The index rules BSR shares with CSR are tested in ``test_validation.py``.
"""

import numpy as np
import pytest
import scipy.sparse

import jsparse
from tests.helpers import (assert_same_matrix, count_nonzero_blocks, make_sparse, random_dense,
                           to_float64)


@pytest.mark.parametrize("block_shape", [(1, 1), (2, 3), (3, 2), (6, 6)],
                         ids=lambda b: f"{b[0]}x{b[1]}")
def test_fromdense_block_shapes(block_shape):
  dense = random_dense(np.random.default_rng(0), (6, 6), 0.15, np.float32, empty_rows=1)
  nse = count_nonzero_blocks(dense, block_shape) + 1
  matrix = jsparse.BSR.fromdense(dense, block_shape=block_shape, nse=nse)
  assert_same_matrix(matrix, make_sparse("bsr", dense, pad=1, block_shape=block_shape))
  assert matrix.block_shape == block_shape and matrix.data.shape == (nse, *block_shape)
  assert matrix.block_grid == (6 // block_shape[0], 6 // block_shape[1])
  np.testing.assert_array_equal(matrix.todense(), dense)


def test_block_layout():
  dense = np.zeros((4, 6), np.float32)
  dense[0, 5] = 1.0  # block (0, 2)
  dense[3, 0] = 2.0  # block (1, 0)
  dense[2, 3] = 3.0  # block (1, 1)
  matrix = jsparse.BSR.fromdense(dense, block_shape=(2, 2), nse=4)
  np.testing.assert_array_equal(matrix.row_offsets, [0, 1, 3])
  np.testing.assert_array_equal(matrix.col_indices, [2, 0, 1, 0])  # padding: column 0
  np.testing.assert_array_equal(matrix.data[0], [[0, 1], [0, 0]])
  np.testing.assert_array_equal(matrix.data[1], [[0, 0], [2, 0]])
  np.testing.assert_array_equal(matrix.data[2], [[0, 3], [0, 0]])
  np.testing.assert_array_equal(matrix.data[3], np.zeros((2, 2)))
  np.testing.assert_array_equal(matrix.block_row_indices(), [0, 1, 1, 2])


def test_tocoo_keeps_every_value_of_every_block():
  dense = np.zeros((4, 6), np.float32)
  dense[3, 0] = 2.0
  matrix = jsparse.BSR.fromdense(dense, block_shape=(2, 3), nse=2)
  coo = matrix.tocoo()
  assert coo.nse == 2 * 6  # explicit zeros of the stored block, plus the padding block
  jsparse.COO((coo.data, coo.row_indices, coo.col_indices), shape=coo.shape, validate=True)
  assert int((np.asarray(coo.row_indices) < 4).sum()) == 6
  np.testing.assert_array_equal(coo.todense(), dense)
  np.testing.assert_array_equal(matrix.tocsr().todense(), dense)


@pytest.mark.parametrize("block_shape, error, match", [
    ((2, 4), ValueError, r"block_shape \(2, 4\) must divide the shape \(6, 6\)"),
    ((4, 3), ValueError, r"block_shape \(4, 3\) must divide the shape \(6, 6\)"),
    ((0, 3), ValueError, r"block_shape must be positive, got \(0, 3\)"),
    ((2,), TypeError, "block_shape must be a pair of ints"),
    (None, TypeError, "block_shape must be a pair of ints"),
])
def test_bad_block_shape_raises(block_shape, error, match):
  with pytest.raises(error, match=match):
    jsparse.BSR.fromdense(np.eye(6), block_shape=block_shape)


def test_constructor_block_shape_must_divide_shape():
  with pytest.raises(ValueError, match=r"block_shape \(2, 4\) must divide the shape \(4, 6\)"):
    jsparse.BSR((np.ones((1, 2, 4), np.float32), np.zeros(1, np.int32), np.array([0, 1, 1])),
                shape=(4, 6))


@pytest.mark.parametrize("data_shape", [(2, 4), (2, 2, 2, 2)])
def test_data_must_be_3d(data_shape):
  with pytest.raises(ValueError, match=r"data must be 3-D \[nse, bm, bk\]"):
    jsparse.BSR((np.ones(data_shape, np.float32), np.zeros(2, np.int32), np.array([0, 1, 2])),
                shape=(4, 4))


def test_col_indices_count_blocks_not_columns():
  # Block column 2 is out of range for K / bk = 6 / 3 = 2 block columns, though column 2 exists.
  with pytest.raises(ValueError, match=r"col_indices out of range: col_indices\[0\] = 2, "
                                       r"expected 0 <= index < 2"):
    jsparse.BSR((np.ones((1, 2, 3), np.float32), np.array([2], np.int32), np.array([0, 1, 1])),
                shape=(4, 6))


@pytest.mark.parametrize("pad", [0, 2])
def test_scipy_round_trip(pad):
  dense = random_dense(np.random.default_rng(3), (6, 8), 0.1, empty_rows=2)
  matrix = make_sparse("bsr", dense, pad=pad, block_shape=(3, 2))
  scipy_matrix = matrix.to_scipy()
  assert scipy_matrix.format == "bsr" and scipy_matrix.blocksize == (3, 2)
  assert scipy_matrix.data.shape[0] == matrix.nse - pad
  np.testing.assert_array_equal(scipy_matrix.toarray(), dense)
  assert_same_matrix(jsparse.BSR.from_scipy(scipy_matrix), make_sparse("bsr", dense,
                                                                       block_shape=(3, 2)))


def test_from_scipy_takes_block_shape():
  dense = random_dense(np.random.default_rng(4), (4, 6), 0.2)
  from_csr = jsparse.BSR.from_scipy(scipy.sparse.csr_array(dense), block_shape=(2, 3))
  assert_same_matrix(from_csr, make_sparse("bsr", dense, block_shape=(2, 3)))
  with pytest.raises(ValueError, match="block_shape is required"):
    jsparse.BSR.from_scipy(scipy.sparse.csr_array(dense))


def test_tobsr():
  dense = random_dense(np.random.default_rng(5), (4, 6), 0.3, np.float32)
  matrix = make_sparse("bsr", dense, block_shape=(2, 3))
  assert matrix.tobsr() is matrix and matrix.tobsr((2, 3)) is matrix
  reblocked = matrix.tobsr((1, 2))
  assert_same_matrix(reblocked, make_sparse("bsr", dense, block_shape=(1, 2)))
  np.testing.assert_array_equal(to_float64(matrix.to_bcsr().todense()), dense)
