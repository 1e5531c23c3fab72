"""Synthetic matrices (``jsparse/datasets/generators.py``): sizes, patterns, seeds, formats."""

import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse.datasets import block_sparse, magnitude_pruned, nm_random, rmat, uniform_random
from tests.helpers import assert_same_matrix, count_nonzero_blocks

SPARSITIES = (0.0, 0.3, 0.5, 0.9, 0.99, 1.0)


def assert_valid(matrix: jsparse.SparseMatrix) -> None:
  """Rebuilds the matrix with the host checks on (the generators skip them)."""
  extras = {"n": matrix.n, "m": matrix.m} if matrix.format == "nm" else {}
  type(matrix)((matrix.data, *matrix.index_arrays), shape=matrix.shape, validate=True, **extras)


def dense(matrix: jsparse.SparseMatrix) -> np.ndarray:
  return matrix.to_scipy().toarray().astype(np.float64)


def assert_differ(first: jsparse.SparseMatrix, second: jsparse.SparseMatrix) -> None:
  assert not np.array_equal(dense(first), dense(second))


# -- uniform_random --------------------------------------------------------------------------------


# (64, 64) at 0.99 and (100, 300) at 0.995 draw positions; the others go through a mask.
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 64), (100, 300), (0, 5)], ids=str)
@pytest.mark.parametrize("sparsity", SPARSITIES + (0.995,))
def test_uniform_random_has_exactly_the_asked_nnz(shape, sparsity):
  matrix = uniform_random(shape, sparsity, seed=3)
  assert isinstance(matrix, jsparse.CSR) and matrix.shape == shape
  assert matrix.dtype == np.float32 and matrix.col_indices.dtype == np.int32
  assert matrix.nse == round((1 - sparsity) * shape[0] * shape[1])
  assert np.count_nonzero(dense(matrix)) == matrix.nse  # standard normal: no stored zero
  assert_valid(matrix)


def test_uniform_random_is_seeded():
  first = uniform_random((40, 50), 0.7, seed=1)
  assert_same_matrix(uniform_random((40, 50), 0.7, seed=1), first)
  assert_differ(uniform_random((40, 50), 0.7, seed=2), first)
  assert not np.array_equal(uniform_random((40, 50), 0.7, seed=2).col_indices, first.col_indices)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float64])
def test_uniform_random_value_dtype(dtype):
  matrix = uniform_random((16, 16), 0.5, dtype=dtype)
  assert matrix.dtype == dtype
  assert np.all(np.asarray(matrix.data).astype(np.float64) != 0)


def test_uniform_random_coo_holds_the_csr_matrix():
  csr = uniform_random((9, 11), 0.6, seed=4)
  coo = uniform_random((9, 11), 0.6, seed=4, format="coo")
  assert isinstance(coo, jsparse.COO)
  np.testing.assert_array_equal(dense(coo), dense(csr))


@pytest.mark.parametrize("kwargs, message", [
    ({"sparsity": 1.5}, "sparsity must be in"),
    ({"sparsity": -0.1}, "sparsity must be in"),
    ({"format": "bsr"}, "format must be one of"),
    ({"dtype": np.int32}, "dtype must have a floating dtype"),
])
def test_uniform_random_rejects_bad_arguments(kwargs, message):
  with pytest.raises((ValueError, TypeError), match=message):
    uniform_random((4, 4), **{"sparsity": 0.5, **kwargs})


def test_uniform_random_runs_at_llm_size():
  matrix = uniform_random((4096, 4096), 0.5, seed=0)
  assert matrix.nse == 4096 * 4096 // 2
  row_lengths = np.diff(np.asarray(matrix.row_offsets))
  assert row_lengths.min() > 1800 and row_lengths.max() < 2300  # binomial rows, sd 32


# -- magnitude_pruned ------------------------------------------------------------------------------


def reference_keep_largest(weight: np.ndarray, sparsity: float, granularity: str) -> np.ndarray:
  """bool mask: a stable descending sort of |w| (per row or overall), its first entries kept."""
  slices = weight.reshape(1, -1) if granularity == "global" else weight
  keep = round((1 - sparsity) * slices.shape[1])
  order = np.argsort(-np.abs(slices), axis=1, kind="stable")[:, :keep]
  mask = np.zeros(slices.shape, bool)
  np.put_along_axis(mask, order, True, axis=1)
  return mask.reshape(weight.shape)


@pytest.mark.parametrize("granularity", ["global", "row"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_magnitude_pruned_keeps_the_largest(granularity, sparsity, ties):
  rng = np.random.default_rng(round(sparsity * 100))
  weight = rng.standard_normal((12, 20))
  if ties:  # few magnitudes, many equal: the leftmost of equal values are kept
    weight = rng.integers(-3, 4, weight.shape).astype(np.float64)
  matrix = magnitude_pruned(weight, sparsity, granularity=granularity)
  expected = reference_keep_largest(weight, sparsity, granularity)
  assert matrix.dtype == np.float64 and matrix.nse == expected.sum()
  np.testing.assert_array_equal(dense(matrix), np.where(expected, weight, 0.0))
  kept = np.zeros(weight.shape, bool)
  rows = np.repeat(np.arange(12), np.diff(np.asarray(matrix.row_offsets)))
  kept[rows, np.asarray(matrix.col_indices)] = True
  np.testing.assert_array_equal(kept, expected)  # zeros of the weight stay stored
  assert_valid(matrix)


def test_magnitude_pruned_of_a_jax_bfloat16_weight():
  weight = jnp.asarray(np.random.default_rng(0).standard_normal((8, 16)), jnp.bfloat16)
  matrix = magnitude_pruned(weight, 0.75, format="coo")
  assert isinstance(matrix, jsparse.COO) and matrix.dtype == jnp.bfloat16 and matrix.nse == 32
  magnitudes = np.abs(np.asarray(weight, np.float64))
  assert np.abs(dense(matrix)[dense(matrix) != 0]).min() >= np.sort(magnitudes.ravel())[-32]


def test_magnitude_pruned_rejects_bad_arguments():
  with pytest.raises(ValueError, match="granularity must be one of"):
    magnitude_pruned(np.ones((2, 2)), 0.5, granularity="column")
  with pytest.raises(ValueError, match="weight must be a 2-D"):
    magnitude_pruned(np.ones(4), 0.5)


# -- rmat ------------------------------------------------------------------------------------------


def test_rmat_degrees_follow_a_power_law():
  matrix = rmat((1024, 1024), 16 * 1024, seed=0)
  assert 0 < matrix.nse <= 16 * 1024
  assert_valid(matrix)  # duplicates dropped: columns strictly increase within rows
  row_degrees = np.diff(np.asarray(matrix.row_offsets))
  col_degrees = np.bincount(np.asarray(matrix.col_indices), minlength=1024)
  for degrees in (row_degrees, col_degrees):
    assert degrees.max() > 10 * degrees.mean()
    assert (degrees == 0).sum() > 100  # many isolated vertices, as in Graph500 graphs


@pytest.mark.parametrize("shape", [(1000, 300), (64, 4096), (1, 1)], ids=str)
def test_rmat_rectangular_and_not_powers_of_two(shape):
  matrix = rmat(shape, 5000, seed=1, format="coo")
  assert isinstance(matrix, jsparse.COO) and matrix.shape == shape and 0 < matrix.nse <= 5000
  assert_valid(matrix)


def test_rmat_permute_relabels_vertices():
  plain = rmat((512, 512), 4096, seed=2)
  permuted = rmat((512, 512), 4096, seed=2, permute=True)
  assert plain.nse == permuted.nse
  degrees = [np.sort(np.diff(np.asarray(m.row_offsets))) for m in (plain, permuted)]
  np.testing.assert_array_equal(*degrees)
  assert np.argmax(np.diff(np.asarray(plain.row_offsets))) == 0  # a > d: row 0 is the heaviest
  assert_differ(plain, permuted)


def test_rmat_is_seeded():
  assert_same_matrix(rmat((256, 256), 2048, seed=5), rmat((256, 256), 2048, seed=5))
  assert_differ(rmat((256, 256), 2048, seed=5), rmat((256, 256), 2048, seed=6))


def test_rmat_rejects_probabilities_that_do_not_sum_to_one():
  with pytest.raises(ValueError, match="sum to 1"):
    rmat((16, 16), 10, a=0.5, b=0.5, c=0.5, d=0.5)


# -- nm_random -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, m", [(2, 4), (1, 4), (4, 8), (1, 1), (8, 16)], ids=str)
def test_nm_random_holds_the_pattern(n, m):
  matrix = nm_random((10, 4 * m), n, m, seed=n)
  assert isinstance(matrix, jsparse.NM) and (matrix.n, matrix.m) == (n, m)
  assert_valid(matrix)
  counts = np.count_nonzero(dense(matrix).reshape(10, 4, m), axis=-1)
  np.testing.assert_array_equal(counts, n)


def test_nm_random_positions_are_uniform():
  matrix = nm_random((2000, 16), 2, 4, seed=0)
  position_counts = np.bincount(np.asarray(matrix.indices).ravel(), minlength=4)
  # 8000 groups, 2 of 4 kept: each position held 4000 times, sd about 45.
  np.testing.assert_allclose(position_counts, 4000, atol=300)


def test_nm_random_formats_and_seeds():
  nm = nm_random((6, 8), seed=1)
  csr = nm_random((6, 8), seed=1, format="csr")
  assert isinstance(csr, jsparse.CSR) and csr.nse == 24
  np.testing.assert_array_equal(dense(csr), dense(nm))
  assert_differ(nm_random((6, 8), seed=2), nm)
  with pytest.raises(ValueError, match="m dividing K=6"):
    nm_random((4, 6), 2, 4)
  with pytest.raises(ValueError, match="format must be one of"):
    nm_random((4, 8), format="bsr")


# -- block_sparse ----------------------------------------------------------------------------------


@pytest.mark.parametrize("block_shape", [(1, 1), (2, 4), (4, 4)], ids=str)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_block_sparse_zeroes_that_fraction_of_blocks(block_shape, sparsity):
  shape = (16, 32)
  matrix = block_sparse(shape, block_shape, sparsity, seed=7)
  num_blocks = (16 // block_shape[0]) * (32 // block_shape[1])
  kept = round((1 - sparsity) * num_blocks)
  assert isinstance(matrix, jsparse.BSR) and matrix.block_shape == block_shape
  assert matrix.nse == kept
  assert count_nonzero_blocks(dense(matrix), block_shape) == kept
  assert np.count_nonzero(dense(matrix)) == kept * block_shape[0] * block_shape[1]
  assert_valid(matrix)


def test_block_sparse_formats_and_seeds():
  bsr = block_sparse((8, 8), (2, 2), 0.5, seed=0)
  coo = block_sparse((8, 8), (2, 2), 0.5, seed=0, format="coo")
  assert isinstance(coo, jsparse.COO) and coo.nse == 32
  np.testing.assert_array_equal(dense(coo), dense(bsr))
  assert_differ(block_sparse((8, 8), (2, 2), 0.5, seed=1), bsr)
  with pytest.raises(ValueError, match="block_shape must be positive and divide"):
    block_sparse((8, 6), (4, 4), 0.5)
