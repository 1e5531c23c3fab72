"""CSR (``jsparse/formats/csr.py``): layout, SciPy and BCSR round trips, conversions.

The index rules CSR shares with BSR are tested in ``test_validation.py``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from jax.experimental import sparse as jax_sparse

import jsparse
from tests.helpers import assert_same_matrix, make_sparse, random_dense

DENSE = np.array([[0.0, 2.0, 0.0],
                  [0.0, 0.0, 0.0],
                  [1.0, 0.0, 3.0]], np.float32)


def test_fromdense_layout_with_padding_at_the_end():
  matrix = jsparse.CSR.fromdense(DENSE, nse=5)
  np.testing.assert_array_equal(matrix.row_offsets, [0, 1, 1, 3])
  np.testing.assert_array_equal(matrix.col_indices, [1, 0, 2, 0, 0])
  np.testing.assert_array_equal(matrix.data, [2, 1, 3, 0, 0])
  np.testing.assert_array_equal(matrix.entry_rows(), [0, 2, 2, 3, 3])  # padding: row M
  np.testing.assert_array_equal(matrix.todense(), DENSE)


def test_padding_values_do_not_reach_the_dense_matrix():
  matrix = jsparse.CSR((np.array([2, 1, 3, 7], np.float32), np.array([1, 0, 2, 2], np.int32),
                        np.array([0, 1, 1, 3], np.int32)), shape=(3, 3))
  np.testing.assert_array_equal(matrix.todense(), DENSE)
  np.testing.assert_array_equal(matrix.to_scipy().toarray(), DENSE)


def test_from_scipy_sorts_and_sums_duplicates():
  # Row 0 holds columns 2, 0, 2 (unsorted, with a duplicate).
  scipy_matrix = scipy.sparse.csr_array(
      (np.array([1.0, 2.0, 4.0, 8.0]), np.array([2, 0, 2, 1]), np.array([0, 3, 4])), shape=(2, 3))
  matrix = jsparse.CSR.from_scipy(scipy_matrix)
  np.testing.assert_array_equal(matrix.row_offsets, [0, 2, 3])
  np.testing.assert_array_equal(matrix.col_indices, [0, 2, 1])
  np.testing.assert_array_equal(matrix.data, [2.0, 5.0, 8.0])
  assert not scipy_matrix.has_canonical_format  # from_scipy does not modify its input


@pytest.mark.parametrize("scipy_format", ["csr", "csc", "coo", "lil"])
def test_scipy_round_trip(scipy_format):
  rng = np.random.default_rng(1)
  dense = random_dense(rng, (7, 5), 0.4, empty_rows=2)
  matrix = jsparse.CSR.from_scipy(scipy.sparse.csr_array(dense).asformat(scipy_format))
  assert_same_matrix(matrix, make_sparse("csr", dense))
  back = matrix.to_scipy()
  assert back.format == "csr" and back.has_canonical_format
  np.testing.assert_array_equal(back.toarray(), dense)


def test_to_scipy_drops_padding():
  scipy_matrix = jsparse.CSR.fromdense(DENSE, nse=8).to_scipy()
  assert scipy_matrix.nnz == 3 and scipy_matrix.data.shape == (3,)
  np.testing.assert_array_equal(scipy_matrix.toarray(), DENSE)


@pytest.mark.parametrize("pad", [0, 2])
def test_bcsr_round_trip(pad):
  dense = random_dense(np.random.default_rng(pad), (6, 4), 0.4, empty_rows=1)
  bcsr = jax_sparse.BCSR.fromdense(dense, nse=int(np.count_nonzero(dense)) + pad)
  matrix = jsparse.CSR.from_bcsr(bcsr)
  assert_same_matrix(matrix, make_sparse("csr", dense, pad=pad))
  np.testing.assert_array_equal(matrix.to_bcsr().todense(), dense)
  assert_same_matrix(jsparse.CSR.from_bcsr(matrix.to_bcsr()), matrix)


def test_from_bcsr_rejects_batch_dimensions():
  bcsr = jax_sparse.BCSR.fromdense(jnp.ones((2, 3, 4)), n_batch=1)
  with pytest.raises(ValueError, match="n_batch=1"):
    jsparse.CSR.from_bcsr(bcsr)


def test_eager_conversions():
  matrix = jsparse.CSR.fromdense(DENSE, nse=4)
  assert matrix.tocsr() is matrix
  coo = matrix.tocoo()
  assert_same_matrix(coo, jsparse.COO.fromdense(DENSE, nse=4))
  for converted in (coo, matrix.tobsr((3, 1)), matrix.tobsr((1, 3), nse=3), matrix.to_bcoo()):
    np.testing.assert_array_equal(converted.todense(), DENSE)


def test_data_must_be_1d():
  with pytest.raises(ValueError, match=r"data must be 1-D \[nse\], got shape \(2, 1\)"):
    jsparse.CSR((np.ones((2, 1), np.float32), np.zeros(2, np.int32), np.array([0, 1, 2])),
                shape=(2, 3))


def test_natural_row_order_is_seen_on_the_host_and_kept_through_jit():
  offsets = np.array([0, 9, 17, 21, 28, 28], np.int32)  # lengths 9, 8, 4, 7, 0: buckets 4 4 3 3 0
  cols = np.concatenate([np.arange(n) for n in np.diff(offsets)]).astype(np.int32)
  data = np.random.default_rng().standard_normal(offsets[-1]).astype(np.float32)
  natural = jsparse.CSR((data, cols, offsets), shape=(5, 10))
  assert natural.natural_row_order and natural.layout.natural_row_order
  # lengths 4, 9, 8, 7, 0: a 4 before the 9, and buckets 3-4 and an empty row, yet balanced
  assert jsparse.CSR.from_scipy(natural.to_scipy()[[2, 0, 1, 3, 4]]).natural_row_order
  # lengths 1, 9, 0, 0, 0: the 9 after the 1, buckets 1 and 4: neither
  reordered = jsparse.CSR.from_scipy(scipy.sparse.csr_array(
      (np.ones(10, np.float32), np.r_[0, np.arange(9)], [0, 1, 10, 10, 10, 10]), shape=(5, 10)))
  assert not reordered.natural_row_order
  # A hint, never a difference of structure: such matrices stack and vmap together.
  assert jax.tree.structure(natural) == jax.tree.structure(reordered)
  assert natural.layout == reordered.layout
  # Static aux data: it survives jit, with_data and pytree round trips ...
  assert jax.jit(lambda m: m)(natural).natural_row_order
  assert natural.with_data(data * 2).layout == natural.layout
  # ... and a matrix built from traced arrays does not claim it.
  traced = jax.jit(lambda d, c, o: jsparse.CSR((d, c, o), shape=(5, 10)))(data, cols, offsets)
  assert not traced.natural_row_order
  np.testing.assert_allclose(np.asarray(jsparse.spmm(natural, np.eye(10, dtype=np.float32))),
                             natural.to_scipy().toarray(), rtol=1e-6)
