"""SpMV against a float64 NumPy reference, on every format, dtype and registered backend."""

import jax
import numpy as np
import pytest
from hypothesis import given, strategies as st

import jsparse
from tests.ops.cases import assert_close, cases, impls_for, run_forced


@given(case=cases(), transpose=st.booleans(), data=st.data())
def test_spmv_matches_dense_product(case, transpose, data):
  impl = data.draw(st.sampled_from(impls_for("spmv", case.matrix.format)))
  a = case.dense.T if transpose else case.dense
  x, x64 = case.operand(a.shape[1])
  out = run_forced(impl, lambda: jax.jit(
      lambda A, x: jsparse.spmv(A, x, transpose_a=transpose, impl=impl))(case.matrix, x))
  if out is None:
    return
  assert out.dtype == case.dtype
  assert_close(out, a @ x64, np.abs(a) @ np.abs(x64), case.dtype)


def test_spmv_rejects_bad_arguments():
  A = jsparse.COO.fromdense(np.eye(4, 5))
  with pytest.raises(ValueError, match=r"x has the wrong size.*expected 5, got 4"):
    jsparse.spmv(A, np.ones(4))
  with pytest.raises(ValueError, match="x must be 1-D"):
    jsparse.spmv(A, np.ones((5, 1)))
