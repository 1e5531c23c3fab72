"""SDDMM against a float64 NumPy reference, on every format, dtype and registered backend."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import jsparse
from tests.ops.cases import assert_close, cases, impls_for, run_forced


def _stored_mask(matrix) -> np.ndarray:
  """True at every stored (non-padding) position, explicit zeros included."""
  ones = matrix.with_data(jnp.ones(matrix.data.shape, jnp.float32))
  # Padding entries are dropped by todense; stored ones count 1 each (no duplicates).
  return np.asarray(ones.todense()) != 0


@given(case=cases(), inner=st.sampled_from([1, 5, 32]), data=st.data())
def test_sddmm_matches_masked_dense_product(case, inner, data):
  impl = data.draw(st.sampled_from(impls_for("sddmm", case.matrix.format)))
  rows, cols = case.dense.shape
  x, x64 = case.operand(rows, inner)
  y, y64 = case.operand(cols, inner)
  out = run_forced(impl, lambda: jax.jit(
      lambda P, X, Y: jsparse.sddmm(P, X, Y, impl=impl))(case.matrix, x, y))
  if out is None:
    return
  assert type(out) is type(case.matrix)
  assert out.dtype == case.dtype
  for index, expected in zip(out.index_arrays, case.matrix.index_arrays):
    np.testing.assert_array_equal(index, expected)
  mask = _stored_mask(case.matrix)
  expected = np.where(mask, x64 @ y64.T, 0.0)
  assert_close(out.todense(), expected, np.abs(x64) @ np.abs(y64).T, case.dtype)


def test_sddmm_padding_entries_are_zero():
  A = jsparse.CSR.fromdense(np.eye(3), nse=5)
  out = jsparse.sddmm(A, np.ones((3, 2)), np.ones((3, 2)))
  np.testing.assert_array_equal(out.data, [2, 2, 2, 0, 0])
  B = jsparse.COO.fromdense(np.eye(3), nse=5)
  np.testing.assert_array_equal(jsparse.sddmm(B, np.ones((3, 2)), np.ones((3, 2))).data,
                                [2, 2, 2, 0, 0])


def test_sddmm_rejects_bad_arguments():
  P = jsparse.CSR.fromdense(np.eye(4, 5))
  with pytest.raises(ValueError, match=r"X.shape\[0\].*pattern.shape\[0\]"):
    jsparse.sddmm(P, np.ones((5, 2)), np.ones((5, 2)))
  with pytest.raises(ValueError, match=r"Y.shape\[0\].*pattern.shape\[1\]"):
    jsparse.sddmm(P, np.ones((4, 2)), np.ones((4, 2)))
  with pytest.raises(ValueError, match=r"Y.shape\[1\].*X.shape\[1\]"):
    jsparse.sddmm(P, np.ones((4, 2)), np.ones((5, 3)))
  with pytest.raises(TypeError, match="pattern must be a jsparse sparse matrix"):
    jsparse.sddmm(np.eye(4, 5), np.ones((4, 2)), np.ones((5, 2)))
