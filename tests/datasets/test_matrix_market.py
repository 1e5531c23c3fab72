"""Matrix Market files (``jsparse/datasets/matrix_market.py``), written here with SciPy."""

import numpy as np
import pytest
import scipy.io
import scipy.sparse

import jsparse
from jsparse.datasets import load_matrix_market


def write(tmp_path, matrix, **kwargs):
  path = tmp_path / "matrix.mtx"
  scipy.io.mmwrite(path, matrix, **kwargs)
  return path


def dense(matrix: jsparse.SparseMatrix) -> np.ndarray:
  return matrix.to_scipy().toarray().astype(np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_real_general_matrix(tmp_path, dtype):
  expected = scipy.sparse.random_array((7, 5), density=0.4, rng=0) - 0.5 * scipy.sparse.eye(7, 5)
  matrix = load_matrix_market(write(tmp_path, expected), dtype=dtype)
  assert isinstance(matrix, jsparse.CSR) and matrix.dtype == dtype
  np.testing.assert_allclose(dense(matrix), expected.toarray(), rtol=1e-6)


def test_symmetric_integer_matrix_is_expanded(tmp_path):
  lower = scipy.sparse.coo_array(np.array([[1, 0, 0], [2, 3, 0], [0, 4, 0]]))
  path = write(tmp_path, lower + scipy.sparse.triu(lower.T, k=1), symmetry="symmetric")
  assert scipy.io.mminfo(path)[4:] == ("integer", "symmetric")
  matrix = load_matrix_market(path, format="coo")
  assert isinstance(matrix, jsparse.COO) and matrix.nse == 6
  np.testing.assert_array_equal(dense(matrix), [[1, 2, 0], [2, 3, 4], [0, 4, 0]])


def test_pattern_matrix_gets_seeded_normal_values(tmp_path):
  pattern = scipy.sparse.random_array((6, 9), density=0.5, rng=1)
  path = write(tmp_path, pattern, field="pattern")
  first = load_matrix_market(path, seed=3)
  np.testing.assert_array_equal(dense(first) != 0, pattern.toarray() != 0)
  np.testing.assert_array_equal(first.data, load_matrix_market(path, seed=3).data)
  assert not np.array_equal(first.data, load_matrix_market(path, seed=4).data)


def test_complex_matrix_is_rejected(tmp_path):
  path = write(tmp_path, scipy.sparse.coo_array(np.array([[1j, 0], [0, 1]])))
  with pytest.raises(ValueError, match="complex"):
    load_matrix_market(path)
