"""vmap over dense operands, over sparse values and over whole sparse matrices."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

import jsparse
from tests.ops.cases import cases

float64_cases = cases(dtypes=(jnp.float64,), max_dim=8)


@settings(max_examples=15)
@given(case=float64_cases, transpose=st.booleans(), axis=st.sampled_from([0, 1, 2]))
def test_vmap_over_dense_operand_matches_loop(case, transpose, axis):
  a = case.dense.T if transpose else case.dense
  batch, _ = case.operand(3, a.shape[1], 2)
  batch = jnp.moveaxis(batch, 0, axis)
  f = lambda b: jsparse.spmm(case.matrix, b, transpose_a=transpose)
  out = jax.vmap(f, in_axes=axis)(batch)
  loop = np.stack([f(jnp.take(batch, i, axis=axis)) for i in range(3)])
  np.testing.assert_allclose(out, loop, rtol=1e-12, atol=1e-14)


@settings(max_examples=15)
@given(case=float64_cases, transpose=st.booleans())
def test_vmap_spmv_over_vectors_matches_loop(case, transpose):
  a = case.dense.T if transpose else case.dense
  vectors, _ = case.operand(4, a.shape[1])
  f = lambda x: jsparse.spmv(case.matrix, x, transpose_a=transpose)
  np.testing.assert_allclose(jax.vmap(f)(vectors), np.stack([f(v) for v in vectors]),
                             rtol=1e-12, atol=1e-14)
  np.testing.assert_allclose(jax.vmap(f, in_axes=1)(vectors.T), np.stack([f(v) for v in vectors]),
                             rtol=1e-12, atol=1e-14)


@settings(max_examples=15)
@given(case=float64_cases)
def test_vmap_over_sparse_values_matches_loop(case):
  b, _ = case.operand(case.dense.shape[1], 2)
  values = jnp.stack([case.matrix.data, -2.0 * case.matrix.data, case.matrix.data ** 2])
  f = lambda data: jsparse.spmm(case.matrix.with_data(data), b)
  np.testing.assert_allclose(jax.vmap(f)(values), np.stack([f(v) for v in values]), rtol=1e-12,
                             atol=1e-14)


@settings(max_examples=15)
@given(case=float64_cases)
def test_vmap_sddmm_matches_loop(case):
  x, _ = case.operand(2, case.dense.shape[0], 3)
  y, _ = case.operand(2, case.dense.shape[1], 3)
  f = lambda x, y: jsparse.sddmm(case.matrix, x, y).data
  np.testing.assert_allclose(jax.vmap(f)(x, y), np.stack([f(x[i], y[i]) for i in range(2)]),
                             rtol=1e-12, atol=1e-14)


def test_vmap_over_a_batch_of_matrices_with_different_patterns():
  rng = np.random.default_rng(5)
  denses = [rng.standard_normal((6, 6)) * (rng.random((6, 6)) < 0.4) for _ in range(3)]
  nse = max(np.count_nonzero(d) for d in denses)
  matrices = [jsparse.CSR.fromdense(d, nse=nse) for d in denses]
  batched = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *matrices)
  b = rng.standard_normal((6, 4))
  out = jax.vmap(lambda A: A @ b)(batched)
  np.testing.assert_allclose(out, np.stack([d @ b for d in denses]), rtol=1e-12, atol=1e-14)
