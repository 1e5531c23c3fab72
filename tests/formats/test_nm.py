"""N:M (``jsparse/formats/nm.py``): magnitude pruning, pattern checks, conversions."""

import jax
import numpy as np
import pytest
import scipy.sparse

import jsparse
from tests.helpers import (NM_PATTERNS, VALUE_DTYPES, assert_same_matrix, jit_todense,
                           make_sparse, nm_reference, random_dense, random_nm_dense, to_float64)

# One compilation per (n, m) instead of one per op; eager calls are covered by the other tests.
jit_fromdense = jax.jit(jsparse.NM.fromdense, static_argnames=("n", "m", "prune"))


@pytest.mark.parametrize("n, m", NM_PATTERNS, ids=lambda v: str(v))
@pytest.mark.parametrize("density", [0.3, 1.0])
def test_fromdense_keeps_the_n_largest_magnitudes(n, m, density):
  dense = random_dense(np.random.default_rng(n * 100 + m), (5, 2 * m), density, np.float32)
  matrix = jit_fromdense(dense, n=n, m=m)
  data, indices = nm_reference(dense, n, m)
  assert matrix.n == n and matrix.m == m and matrix.indices.dtype == np.uint8
  np.testing.assert_array_equal(matrix.indices, indices)
  np.testing.assert_array_equal(matrix.data, data)
  kept = np.zeros_like(dense)
  group_starts = np.arange(indices.shape[1]) // n * m
  kept[np.arange(5)[:, None], group_starts + indices] = data
  np.testing.assert_array_equal(jit_todense(matrix), kept)


def test_ties_keep_the_leftmost_values():
  dense = np.array([[1.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
  matrix = jsparse.NM.fromdense(dense, n=2, m=4)
  np.testing.assert_array_equal(matrix.indices, [[0, 1, 0, 1]])
  np.testing.assert_array_equal(matrix.data, [[1.0, -1.0, 0.0, 0.0]])


def test_float64_magnitudes_are_ranked_exactly():
  """Magnitudes that differ by less than float32 precision must not tie."""
  dense = np.array([[1.0, 1.0 + 1e-12, 0.0, 0.0]])
  np.testing.assert_array_equal(jsparse.NM.fromdense(dense, n=1, m=4).indices, [[1]])


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
def test_prune_false_accepts_the_pattern(dtype):
  dense = random_nm_dense(np.random.default_rng(0), (4, 16), 2, 8, dtype, density=0.6)
  matrix = jsparse.NM.fromdense(dense, n=2, m=8, prune=False)
  assert_same_matrix(matrix, make_sparse("nm", dense, nm=(2, 8)))
  np.testing.assert_array_equal(to_float64(matrix.todense()), to_float64(dense))


def test_prune_false_names_the_row_and_group_that_break_the_pattern():
  dense = random_nm_dense(np.random.default_rng(0), (3, 12), 2, 4)
  dense[1, 8:12] = [1.0, 0.0, 2.0, 3.0]
  with pytest.raises(ValueError, match=r"x does not hold the 2:4 pattern: row 1, group 2 "
                                       r"\(columns 8:12\) has 3 nonzeros > n=2"):
    jsparse.NM.fromdense(dense, n=2, m=4, prune=False)


def test_prune_false_needs_a_concrete_matrix():
  with pytest.raises(ValueError, match="prune=False .* needs a concrete x"):
    jax.jit(lambda x: jsparse.NM.fromdense(x, prune=False))(np.ones((2, 4)))


@pytest.mark.parametrize("shape, n, m, match", [
    ((4, 6), 2, 4, "K=6 must be a multiple of m=4"),
    ((4, 34), 2, 17, r"1 <= n <= m <= 16, got n=2, m=17"),
    ((4, 32), 2, 32, r"1 <= n <= m <= 16, got n=2, m=32"),
    ((4, 8), 5, 4, r"got n=5, m=4"),
    ((4, 8), 0, 4, r"got n=0, m=4"),
])
def test_bad_pattern_arguments_raise(shape, n, m, match):
  with pytest.raises(ValueError, match=match):
    jsparse.NM.fromdense(np.ones(shape, np.float32), n=n, m=m)
  with pytest.raises(ValueError, match=match):
    jsparse.NM((np.ones((shape[0], 2)), np.zeros((shape[0], 2), np.uint8)), shape=shape, n=n, m=m)


def test_tocsr_keeps_explicit_zeros():
  dense = random_nm_dense(np.random.default_rng(1), (4, 8), 2, 4, np.float32, density=0.5)
  matrix = jsparse.NM.fromdense(dense, n=2, m=4)
  csr = matrix.tocsr()
  assert csr.nse == 4 * 2 * 2
  np.testing.assert_array_equal(csr.row_offsets, np.arange(5) * 4)
  jsparse.CSR((csr.data, csr.col_indices, csr.row_offsets), shape=csr.shape, validate=True)
  np.testing.assert_array_equal(csr.todense(), dense)
  np.testing.assert_array_equal(matrix.tocoo().todense(), dense)


def test_from_scipy():
  dense = random_nm_dense(np.random.default_rng(2), (4, 8), 1, 4)
  matrix = jsparse.NM.from_scipy(scipy.sparse.csr_array(dense), n=1, m=4)
  assert_same_matrix(matrix, make_sparse("nm", dense, nm=(1, 4)))
  np.testing.assert_array_equal(matrix.to_scipy().toarray(), dense)
  too_dense = scipy.sparse.csr_array(np.ones((2, 4)))
  with pytest.raises(ValueError, match="does not hold the 1:4 pattern"):
    jsparse.NM.from_scipy(too_dense, n=1, m=4)
  pruned = jsparse.NM.from_scipy(too_dense, n=1, m=4, prune=True)
  np.testing.assert_array_equal(pruned.todense(), [[1, 0, 0, 0], [1, 0, 0, 0]])


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("indices, match", [
    ([[0, 2, 1, 1]], r"strictly increase within each group of 2: row 0, group 1 holds "
                     r"positions \[1, 1\]"),
    ([[3, 1, 0, 1]], r"row 0, group 0 holds positions \[3, 1\]"),
    ([[0, 4, 0, 1]], r"indices out of range: indices\[\(0, 1\)\] = 4, expected 0 <= index < 4"),
    ([[0, 1, -1, 1]], r"indices out of range: indices\[\(0, 2\)\] = -1"),
])
def test_bad_indices_raise(indices, match):
  with pytest.raises(ValueError, match=match):
    jsparse.NM((np.ones((1, 4), np.float32), np.array(indices, np.int32)), shape=(1, 8))


@pytest.mark.parametrize("arrays, error, match", [
    ((np.ones((2, 4), np.int32), np.zeros((2, 4), np.uint8)), TypeError,
     "data must have a floating dtype"),
    ((np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)), TypeError,
     "indices must have an integer dtype"),
    ((np.ones((2, 8), np.float32), np.zeros((2, 8), np.uint8)), ValueError,
     r"data must have shape \(2, 4\) \(\[M, K / m \* n\] for 2:4\), got \(2, 8\)"),
    ((np.ones((2, 4), np.float32), np.zeros((2, 3), np.uint8)), ValueError,
     r"indices must have shape \(2, 4\)"),
])
def test_bad_arrays_raise(arrays, error, match):
  with pytest.raises(error, match=match):
    jsparse.NM(arrays, shape=(2, 8))


def test_validate_false_skips_the_pattern_check():
  indices = np.array([[1, 0, 0, 1]], np.uint8)  # group 0 decreases
  matrix = jsparse.NM((np.ones((1, 4), np.float32), indices), shape=(1, 8), validate=False)
  assert matrix.nse == 4


# -- packed positions (the GPU kernels' copy of the indices) ---------------------------------------


@pytest.mark.parametrize("n, m, words", [(2, 4, 2), (3, 8, 3), (1, 16, 1), (8, 16, 3), (9, 16, 0)])
def test_packed_indices_are_built_once_and_follow_the_matrix(n, m, words):
  # K = 64 / 48: 2:4 packs 8 groups a word (16 groups -> 2 words), 3:8 two (6 groups -> 3),
  # 1:16 eight (3 groups -> 1, part-filled), 8:16 one (32 bits: 3); 9:16 does not fit a word.
  num_k = 48 if m in (8, 16) else 64
  dense = random_nm_dense(np.random.default_rng(n * m), (3, num_k), n, m, density=0.9)
  matrix = jsparse.NM.fromdense(dense, n=n, m=m)
  assert matrix.packed_indices.dtype == np.uint32 and matrix.packed_indices.shape == (3, words)
  bits = (m - 1).bit_length()
  positions = np.asarray(matrix.indices, np.int64).reshape(3, -1, n)
  if words:
    # Unpack on the host: group g of a row sits in word g // per_word at bit (g % per_word) *
    # n * bits, slot s at s * bits above that.
    per_word = 1 << ((32 // (n * bits)).bit_length() - 1)
    packed = np.asarray(matrix.packed_indices, np.int64)
    groups = np.arange(positions.shape[1])
    for slot in range(n):
      shift = (groups % per_word) * n * bits + slot * bits
      unpacked = (packed[:, groups // per_word] >> shift) & ((1 << bits) - 1)
      np.testing.assert_array_equal(unpacked, positions[:, :, slot])
  # The packed child travels through pytrees, jit and with_data unchanged.
  leaves = jax.tree_util.tree_leaves(matrix)
  assert len(leaves) == 3 and leaves[2] is matrix.packed_indices
  moved = jax.jit(lambda a: a)(matrix)
  np.testing.assert_array_equal(moved.packed_indices, matrix.packed_indices)
  scaled = matrix.with_data(matrix.data * 2)
  assert scaled.packed_indices is matrix.packed_indices
  assert matrix.index_names == ("indices", "packed_indices")


def test_built_from_its_index_arrays_with_the_packed_copy():
  # type(matrix)((data, *index_arrays)) rebuilds a matrix; a wrong packed copy is refused.
  matrix = jsparse.NM.fromdense(random_nm_dense(np.random.default_rng(3), (3, 64), 2, 4), n=2,
                                m=4)
  again = jsparse.NM((matrix.data, *matrix.index_arrays), shape=matrix.shape, validate=True)
  assert again.packed_indices is matrix.packed_indices
  wrong = np.asarray(matrix.packed_indices).copy()
  wrong[1, 0] ^= 1
  with pytest.raises(ValueError, match="packed_indices do not hold the positions of indices"):
    jsparse.NM((matrix.data, matrix.indices, wrong), shape=matrix.shape, validate=True)
  with pytest.raises(ValueError, match=r"packed_indices must have shape \(3, 2\)"):
    jsparse.NM((matrix.data, matrix.indices, wrong[:, :1]), shape=matrix.shape)
  with pytest.raises(TypeError, match="packed_indices must be uint32, got int32"):
    jsparse.NM((matrix.data, matrix.indices, wrong.astype(np.int32)), shape=matrix.shape)
  with pytest.raises(ValueError, match="got 1 arrays"):
    jsparse.NM((matrix.data,), shape=matrix.shape)


@pytest.mark.parametrize("shape", [(0, 8), (3, 0), (0, 0)])
def test_packed_indices_of_empty_matrices(shape):
  matrix = jsparse.NM.fromdense(np.zeros(shape, np.float32), n=2, m=4)
  assert matrix.packed_indices.shape == (shape[0], -(-shape[1] // 32))
