"""COO (``jsparse/formats/coo.py``): layout, SciPy and BCOO round trips, transpose, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from jax.experimental import sparse as jax_sparse

import jsparse
from tests.helpers import (assert_same_matrix, fewer_examples, make_sparse, random_dense,
                           sparse_cases, to_float64)

DENSE = np.array([[0.0, 2.0, 0.0],
                  [1.0, 0.0, 3.0]], np.float32)


def coo(rows, cols, *, shape=(2, 3), data=None, **kwargs) -> jsparse.COO:
  """A COO matrix from index lists; values 1, 2, 3, ... unless given."""
  data = np.arange(1, len(rows) + 1, dtype=np.float32) if data is None else data
  return jsparse.COO((data, np.asarray(rows, np.int32), np.asarray(cols, np.int32)), shape=shape,
                     **kwargs)


def test_fromdense_is_row_major_with_padding_at_the_end():
  matrix = jsparse.COO.fromdense(DENSE, nse=5)
  np.testing.assert_array_equal(matrix.row_indices, [0, 1, 1, 2, 2])  # padding row: M = 2
  np.testing.assert_array_equal(matrix.col_indices, [1, 0, 2, 3, 3])  # padding column: K = 3
  np.testing.assert_array_equal(matrix.data, [2, 1, 3, 0, 0])
  assert matrix.nse == 5 and matrix.row_indices.dtype == np.int32
  np.testing.assert_array_equal(matrix.todense(), DENSE)


def test_entries_in_any_order_with_padding_in_the_middle():
  matrix = coo([1, 2, 0, 1], [2, 3, 1, 0], data=np.array([3, 9, 2, 1], np.float32))
  np.testing.assert_array_equal(matrix.todense(), DENSE)
  csr = matrix.tocsr()
  assert csr.nse == 4
  np.testing.assert_array_equal(csr.row_offsets, [0, 1, 3])
  np.testing.assert_array_equal(csr.col_indices[:3], [1, 0, 2])
  np.testing.assert_array_equal(csr.data, [2, 1, 3, 0])  # padding values are zeroed
  np.testing.assert_array_equal(csr.todense(), DENSE)


def test_from_scipy_sums_duplicates_and_round_trips():
  rng = np.random.default_rng(0)
  rows, cols = rng.integers(0, 6, 30), rng.integers(0, 5, 30)  # many duplicates
  values = rng.standard_normal(30)
  scipy_matrix = scipy.sparse.coo_array((values, (rows, cols)), shape=(6, 5))
  matrix = jsparse.COO.from_scipy(scipy_matrix)
  assert matrix.dtype == np.float64 and matrix.row_indices.dtype == np.int32
  assert matrix.nse == len(set(zip(rows.tolist(), cols.tolist())))
  np.testing.assert_allclose(matrix.todense(), scipy_matrix.toarray(), rtol=1e-15)
  np.testing.assert_allclose(matrix.to_scipy().toarray(), scipy_matrix.toarray(), rtol=1e-15)
  assert_same_matrix(jsparse.COO.from_scipy(matrix.to_scipy()), matrix)


def test_to_scipy_drops_padding():
  scipy_matrix = jsparse.COO.fromdense(DENSE, nse=7).to_scipy()
  assert scipy_matrix.format == "coo" and scipy_matrix.nnz == 3
  np.testing.assert_array_equal(scipy_matrix.toarray(), DENSE)


@pytest.mark.parametrize("pad", [0, 2])
def test_bcoo_round_trip(pad):
  dense = random_dense(np.random.default_rng(pad), (5, 7), 0.4, empty_rows=1)
  bcoo = jax_sparse.BCOO.fromdense(dense, nse=int(np.count_nonzero(dense)) + pad)
  matrix = jsparse.COO.from_bcoo(bcoo)
  assert matrix.nse == bcoo.nse
  np.testing.assert_array_equal(matrix.todense(), dense)
  assert_same_matrix(matrix, make_sparse("coo", dense, pad=pad))
  assert_same_matrix(jsparse.COO.from_bcoo(matrix.to_bcoo()), matrix)
  np.testing.assert_array_equal(matrix.to_bcoo().todense(), dense)


def test_from_bcoo_rejects_batch_dimensions():
  bcoo = jax_sparse.BCOO.fromdense(jnp.ones((2, 3, 4)), n_batch=1)
  with pytest.raises(ValueError, match="n_batch=1"):
    jsparse.COO.from_bcoo(bcoo)


transpose_todense = jax.jit(lambda A: A.T.todense())


@fewer_examples(0.6)
@given(case=sparse_cases(formats=("coo",)))
def test_transpose(case):
  transposed = case.matrix.T
  assert transposed.shape == case.dense.shape[::-1] and transposed.nse == case.matrix.nse
  jsparse.COO((transposed.data, *transposed.index_arrays), shape=transposed.shape, validate=True)
  np.testing.assert_array_equal(to_float64(transpose_todense(case.matrix)), case.dense.T)
  assert_same_matrix(transposed.T, case.matrix)


def test_transpose_eager():
  matrix = jsparse.COO.fromdense(DENSE, nse=4)
  np.testing.assert_array_equal(matrix.T.todense(), DENSE.T)
  np.testing.assert_array_equal(matrix.T.tocsr().todense(), DENSE.T)


def test_eager_conversions():
  matrix = jsparse.COO.fromdense(DENSE, nse=4)
  assert matrix.tocoo() is matrix
  for converted in (matrix.tocsr(), matrix.tobsr((1, 3)), matrix.tobsr((2, 1), nse=4)):
    np.testing.assert_array_equal(converted.todense(), DENSE)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows, cols, match", [
    ([0, 3], [1, 0], r"row_indices out of range: row_indices\[1\] = 3, expected 0 <= index < 2"),
    ([0, 1], [1, 3], r"col_indices out of range: col_indices\[1\] = 3, expected 0 <= index < 3"),
    ([-1, 1], [1, 0], r"row_indices out of range: row_indices\[0\] = -1"),
    ([0, 1], [-2, 0], r"col_indices out of range: col_indices\[0\] = -2"),
    # Padding is (M, K) exactly; a row index of M with a real column is out of range.
    ([0, 2], [1, 0], r"row_indices\[1\] = 2"),
    ([0, 1, 0], [1, 0, 1], r"duplicate entry \(0, 1\) at positions 0 and 2"),
])
def test_bad_indices_raise(rows, cols, match):
  with pytest.raises(ValueError, match=match):
    coo(rows, cols)


def test_padding_entries_are_accepted_anywhere():
  matrix = coo([2, 0, 2], [3, 1, 3])
  np.testing.assert_array_equal(matrix.todense(), [[0, 2, 0], [0, 0, 0]])


@pytest.mark.parametrize("arrays, error, match", [
    ((np.ones(2, np.int32), [0, 1], [0, 1]), TypeError, "data must have a floating dtype"),
    ((np.ones(2, np.complex64), [0, 1], [0, 1]), TypeError, "data must have a floating dtype"),
    ((np.ones(2, np.float32), [0.0, 1.0], [0, 1]), TypeError,
     "row_indices must have an integer dtype"),
    ((np.ones(2, np.float32), [0, 1], [0.0, 1.0]), TypeError,
     "col_indices must have an integer dtype"),
    ((np.ones(2, np.float32), [0, 1, 1], [0, 1]), ValueError,
     r"row_indices must have shape \(2,\)"),
    ((np.ones(2, np.float32), [0, 1], [0]), ValueError, r"col_indices must have shape \(2,\)"),
    ((np.ones((2, 1), np.float32), [0, 1], [0, 1]), ValueError, "data must be 1-D"),
])
def test_bad_arrays_raise(arrays, error, match):
  with pytest.raises(error, match=match):
    jsparse.COO(arrays, shape=(2, 3))


def test_validate_false_skips_value_checks_only():
  matrix = coo([0, 0], [1, 1], validate=False)  # a duplicate: not checked
  assert matrix.nse == 2
  with pytest.raises(ValueError, match="col_indices must have shape"):
    jsparse.COO((np.ones(2, np.float32), np.zeros(2, np.int32), np.zeros(3, np.int32)),
                shape=(2, 3), validate=False)
