"""What every format shares (``jsparse/formats/base.py``): properties, ``fromdense``, pytree
behaviour under JAX transformations, dtype casts, and conversions to the other formats, SciPy
and ``jax.experimental.sparse``.

Hypothesis draws a new shape and nse per example and each costs XLA compilations, so the
conversions run under module-level ``jax.jit`` wrappers (one compilation per example instead of
one per op); eager calls are covered with fixed matrices in the per-format tests.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import jsparse
from tests.helpers import (FORMATS, VALUE_DTYPES, assert_same_matrix, count_nonzero_blocks,
                           fewer_examples, fromdense, jit_todense, make_sparse, random_dense,
                           random_nm_dense, sparse_cases, to_float64)

tocoo = jax.jit(lambda A: A.tocoo())
jit_fromdense = jax.jit(fromdense, static_argnames=("fmt", "nse", "block_shape", "nm"))
tobsr = jax.jit(lambda A, block_shape, nse: A.tobsr(block_shape, nse=nse),
                static_argnames=("block_shape", "nse"))
# One compilation for all conversions of an example: (COO, CSR, and the dense matrix of each
# conversion).
conversions = jax.jit(lambda A: (A.tocoo(), A.tocsr(), [B.todense() for B in (
    A.tocoo(), A.tocsr(), A.to_bcoo(), A.to_bcsr())]))
vmap_todense = jax.jit(jax.vmap(lambda A: A.todense()))
# The gradient of sum(A.todense() * W) with respect to A: W at the stored positions.
grad_of_todense = jax.jit(jax.grad(lambda A, W: jnp.sum(A.todense().astype(W.dtype) * W),
                                   allow_int=True))


def assert_valid(matrix: jsparse.SparseMatrix) -> None:
  """Rebuilds ``matrix`` with validate=True: the constructor's checks accept its arrays."""
  extras = {"n": matrix.n, "m": matrix.m} if matrix.format == "nm" else {}
  type(matrix)((matrix.data, *matrix.index_arrays), shape=matrix.shape, validate=True, **extras)


def stored_coordinates(matrix: jsparse.SparseMatrix) -> tuple[np.ndarray, np.ndarray]:
  """(rows, cols) of every stored value, in the order of ``matrix.data.reshape(-1)``."""
  coo = tocoo(matrix)
  return np.asarray(coo.row_indices), np.asarray(coo.col_indices)


def expected_nse(case) -> int:
  if case.matrix.format == "bsr":
    return count_nonzero_blocks(case.dense, case.options["block_shape"]) + case.pad
  if case.matrix.format == "nm":
    n, m = case.options["nm"]
    return case.dense.shape[0] * (case.dense.shape[1] // m) * n
  return int(np.count_nonzero(case.dense)) + case.pad


@given(case=sparse_cases())
def test_properties_and_todense(case):
  matrix = case.matrix
  assert matrix.shape == case.dense.shape and matrix.ndim == 2 and matrix.size == case.dense.size
  assert np.dtype(matrix.dtype) in VALUE_DTYPES
  assert matrix.nse == expected_nse(case)
  block_size = np.prod(matrix.block_shape) if matrix.format == "bsr" else 1
  assert matrix.nnz == matrix.nse * block_size
  assert matrix.density == pytest.approx(matrix.nnz / matrix.size)
  assert repr(matrix).startswith(f"{type(matrix).__name__}(shape={matrix.shape}")
  dense = jit_todense(matrix)
  assert dense.dtype == matrix.dtype
  np.testing.assert_array_equal(to_float64(dense), case.dense)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
def test_eager_fromdense_and_todense_for_every_dtype(fmt, dtype):
  rng = np.random.default_rng(0)
  if fmt == "nm":
    dense = random_nm_dense(rng, (4, 8), 2, 4, dtype, density=0.7)
  else:
    dense = random_dense(rng, (4, 8), 0.5, dtype, empty_rows=1)
  expected = make_sparse(fmt, dense, block_shape=(2, 4))
  matrix = fromdense(fmt, dense, block_shape=(2, 4))
  assert_same_matrix(matrix, expected)
  assert matrix.todense().dtype == dtype
  np.testing.assert_array_equal(to_float64(matrix.todense()), to_float64(dense))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", [(0, 4), (4, 0), (0, 0), (1, 4)])
def test_empty_and_single_row_shapes(fmt, shape):
  dense = np.zeros(shape, np.float32)
  matrix = fromdense(fmt, dense, block_shape=(1, 1), nm=(1, 4))
  assert_same_matrix(matrix, make_sparse(fmt, dense, block_shape=(1, 1), nm=(1, 4)))
  assert matrix.shape == shape
  if fmt != "nm":  # NM stores n zeros of every group.
    assert matrix.nse == 0 and matrix.density == 0.0
  np.testing.assert_array_equal(matrix.todense(), dense)
  np.testing.assert_array_equal(matrix.tocsr().todense(), dense)


@fewer_examples(0.6)
@given(case=sparse_cases())
def test_fromdense_under_jit_gives_the_same_matrix(case):
  """fromdense with explicit nse under jit == the NumPy-built matrix (padding included)."""
  x = jnp.asarray(case.dense, case.matrix.dtype)
  options = {k: tuple(v) for k, v in case.options.items()}
  assert_same_matrix(jit_fromdense(case.matrix.format, x, nse=case.nse, **options), case.matrix)


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr"])
def test_fromdense_with_nse_too_small_raises(fmt):
  dense = np.eye(4)
  with pytest.raises(ValueError, match=r"nse=1 is smaller than the number of entries to store"):
    fromdense(fmt, dense, nse=1, block_shape=(1, 1))


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr"])
def test_fromdense_under_jit_needs_nse(fmt):
  with pytest.raises(ValueError, match="nse must be given"):
    jax.jit(lambda x: fromdense(fmt, x, block_shape=(1, 1)))(jnp.eye(3))


@given(case=sparse_cases(), dtype=st.sampled_from(VALUE_DTYPES))
def test_astype(case, dtype):
  cast = case.matrix.astype(dtype)
  assert type(cast) is type(case.matrix) and cast.dtype == dtype
  for got, want in zip(cast.index_arrays, case.matrix.index_arrays):
    np.testing.assert_array_equal(got, want)
  expected = to_float64(case.dense.astype(dtype))
  np.testing.assert_array_equal(to_float64(jit_todense(cast)), expected)


def test_with_data_checks_the_shape():
  matrix = make_sparse("csr", np.eye(3))
  with pytest.raises(ValueError, match=r"data must have shape \(3,\)"):
    matrix.with_data(jnp.ones(4))


@pytest.mark.parametrize("dtype", [np.int32, np.complex64])
def test_astype_and_with_data_reject_non_float_dtypes(dtype):
  matrix = make_sparse("csr", np.eye(3, dtype=np.float32))
  with pytest.raises(TypeError, match="data must have a floating dtype"):
    matrix.astype(dtype)
  with pytest.raises(TypeError, match="data must have a floating dtype"):
    matrix.with_data(np.ones(3, dtype))


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr"])
def test_int64_indices(fmt):
  dense = random_dense(np.random.default_rng(0), (6, 8), 0.4, empty_rows=1)
  matrix = fromdense(fmt, dense, nse=make_sparse(fmt, dense, pad=2).nse, index_dtype=np.int64)
  assert_same_matrix(matrix, make_sparse(fmt, dense, pad=2, index_dtype=np.int64))
  for converted in (matrix.tocoo(), matrix.tocsr(), jax.jit(lambda A: A)(matrix)):
    assert all(index.dtype == np.int64 for index in converted.index_arrays), converted
    np.testing.assert_array_equal(converted.to_scipy().toarray(), dense)


# -- pytree ----------------------------------------------------------------------------------------


@given(case=sparse_cases())
def test_pytree_flatten_unflatten_tree_map_and_jit(case):
  leaves, treedef = jax.tree_util.tree_flatten(case.matrix)
  assert len(leaves) == 1 + len(case.matrix.index_names)
  assert_same_matrix(jax.tree_util.tree_unflatten(treedef, leaves), case.matrix)
  assert_same_matrix(jax.tree_util.tree_map(lambda x: x, case.matrix), case.matrix)
  assert_same_matrix(jax.jit(lambda A: A)(case.matrix), case.matrix)


@fewer_examples(0.4)
@given(case=sparse_cases(), batch=st.integers(1, 3))
def test_vmap_over_stacked_matrices(case, batch):
  matrices = [case.matrix.with_data(jnp.asarray(
      case.rng.standard_normal(case.matrix.data.shape), case.matrix.dtype)) for _ in range(batch)]
  stacked = jax.tree_util.tree_map(lambda *arrays: jnp.stack(arrays), *matrices)
  dense = vmap_todense(stacked)
  assert dense.shape == (batch, *case.matrix.shape)
  for got, matrix in zip(dense, matrices):
    np.testing.assert_array_equal(got, jit_todense(matrix))


@fewer_examples(0.4)
@given(case=sparse_cases())
def test_grad_of_a_function_of_todense(case):
  matrix = case.matrix
  weights = to_float64(jnp.asarray(case.rng.standard_normal(matrix.shape), matrix.dtype))
  grad = grad_of_todense(matrix, weights)
  assert type(grad) is type(matrix) and grad.shape == matrix.shape
  assert grad.data.dtype == matrix.dtype and grad.data.shape == matrix.data.shape
  assert all(index.dtype == jax.dtypes.float0 for index in grad.index_arrays)
  rows, cols = stored_coordinates(matrix)
  stored = rows < matrix.shape[0]  # Padding gets no gradient.
  expected = np.zeros(rows.shape)
  expected[stored] = weights[rows[stored], cols[stored]]
  np.testing.assert_array_equal(to_float64(grad.data).reshape(-1), expected)


# -- conversions -----------------------------------------------------------------------------------


@fewer_examples(0.6)
@given(case=sparse_cases())
def test_tocoo_tocsr_to_bcoo_to_bcsr(case):
  coo, csr, dense_matrices = conversions(case.matrix)
  for converted, cls in ((coo, jsparse.COO), (csr, jsparse.CSR)):
    assert type(converted) is cls and converted.dtype == case.matrix.dtype
    assert_valid(converted)
  for dense in dense_matrices:
    assert dense.dtype == case.matrix.dtype
    np.testing.assert_array_equal(to_float64(dense), case.dense)


@fewer_examples(0.4)
@given(case=sparse_cases(), block_shape=st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 2)]))
def test_tobsr(case, block_shape):
  if case.dense.shape[0] % block_shape[0] or case.dense.shape[1] % block_shape[1]:
    with pytest.raises(ValueError, match="block_shape"):
      case.matrix.tobsr(block_shape)
    return
  nse = count_nonzero_blocks(case.dense, block_shape) + 1
  bsr = tobsr(case.matrix, block_shape, nse)
  assert bsr.nse == nse
  assert type(bsr) is jsparse.BSR and bsr.block_shape == block_shape
  assert_valid(bsr)
  np.testing.assert_array_equal(to_float64(jit_todense(bsr)), case.dense)


@fewer_examples(0.4)
@given(case=sparse_cases())
def test_to_scipy(case):
  matrix = case.matrix.to_scipy()
  expected_format = {"coo": "coo", "csr": "csr", "bsr": "bsr", "nm": "coo"}[case.matrix.format]
  assert matrix.format == expected_format and matrix.shape == case.dense.shape
  # SciPy has no float16 / bfloat16 sparse arrays: those arrive as float32.
  half = np.dtype(case.matrix.dtype).itemsize < 4
  assert matrix.dtype == (np.float32 if half else case.matrix.dtype)
  np.testing.assert_array_equal(matrix.toarray().astype(np.float64), case.dense)
