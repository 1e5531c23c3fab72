"""Gradients through the JVP and transpose rules: finite differences, and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

import jsparse
from tests.helpers import fromdense
from tests.ops.cases import cases

float64_cases = cases(dtypes=(jnp.float64,), max_dim=7)


@settings(max_examples=12)
@given(case=float64_cases, transpose=st.booleans())
def test_spmm_gradients_match_finite_differences(case, transpose):
  a = case.dense.T if transpose else case.dense
  b, _ = case.operand(a.shape[1], 3)
  f = lambda data, b: jsparse.spmm(case.matrix.with_data(data), b, transpose_a=transpose)
  check_grads(f, (case.matrix.data, b), order=2, modes=["fwd", "rev"])


@settings(max_examples=12)
@given(case=float64_cases, transpose=st.booleans())
def test_spmv_gradients_match_finite_differences(case, transpose):
  a = case.dense.T if transpose else case.dense
  x, _ = case.operand(a.shape[1])
  f = lambda data, x: jsparse.spmv(case.matrix.with_data(data), x, transpose_a=transpose)
  check_grads(f, (case.matrix.data, x), order=2, modes=["fwd", "rev"])


@settings(max_examples=12)
@given(case=float64_cases)
def test_sddmm_gradients_match_finite_differences(case):
  rows, cols = case.dense.shape
  x, _ = case.operand(rows, 4)
  y, _ = case.operand(cols, 4)
  f = lambda x, y: jsparse.sddmm(case.matrix, x, y).data
  check_grads(f, (x, y), order=2, modes=["fwd", "rev"])


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr", "nm"])
def test_grad_of_a_loss_matches_the_dense_gradient(fmt):
  rng = np.random.default_rng(7)
  dense = rng.standard_normal((8, 12)) * (rng.random((8, 12)) < 0.6)
  A = fromdense(fmt, dense, block_shape=(4, 3))
  dense = np.asarray(A.todense())
  b = rng.standard_normal((12, 5))

  loss = lambda A, b: jnp.sum(jnp.tanh(A @ b))
  grad_a, grad_b = jax.grad(loss, argnums=(0, 1), allow_int=True)(A, b)
  dense_grad_a, dense_grad_b = jax.grad(loss, argnums=(0, 1))(dense, b)
  assert type(grad_a) is type(A)
  # The gradient in the values is the dense gradient sampled at the stored entries.
  np.testing.assert_allclose(A.with_data(grad_a.data).todense(),
                             np.where(A.with_data(np.ones_like(A.data)).todense() != 0,
                                      dense_grad_a, 0), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(grad_b, dense_grad_b, rtol=1e-10)


def test_second_order_through_spmm_and_sddmm():
  rng = np.random.default_rng(3)
  A = jsparse.CSR.fromdense(rng.standard_normal((6, 5)) * (rng.random((6, 5)) < 0.5))
  x, y = rng.standard_normal((6, 3)), rng.standard_normal((5, 3))
  # A two-op chain: attention-like scores on A's pattern, then SpMM with them.
  f = lambda x, y: jnp.sum(jsparse.spmm(jsparse.sddmm(A, x, y), y) ** 2)
  check_grads(f, (x, y), order=2, modes=["rev"])
