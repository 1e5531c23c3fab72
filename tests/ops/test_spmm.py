"""SpMM against a float64 NumPy reference, on every format, dtype and registered backend."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import jsparse
from tests.helpers import fromdense
from tests.ops.cases import assert_close, cases, impls_for, run_forced


@given(case=cases(), columns=st.sampled_from([1, 3, 16]), transpose=st.booleans(),
       data=st.data())
def test_spmm_matches_dense_product(case, columns, transpose, data):
  impl = data.draw(st.sampled_from(impls_for("spmm", case.matrix.format)))
  a = case.dense.T if transpose else case.dense
  b, b64 = case.operand(a.shape[1], columns)
  out = run_forced(impl, lambda: jax.jit(
      lambda A, B: jsparse.spmm(A, B, transpose_a=transpose, impl=impl))(case.matrix, b))
  if out is None:
    return
  assert out.dtype == case.dtype
  assert_close(out, a @ b64, np.abs(a) @ np.abs(b64), case.dtype)


@given(case=cases(formats=("csr", "nm")))
def test_matmul_operators(case):
  b, b64 = case.operand(case.dense.shape[1], 4)
  x, x64 = case.operand(4, case.dense.shape[0])
  scale = np.abs(case.dense)
  assert_close(case.matrix @ b, case.dense @ b64, scale @ np.abs(b64), case.dtype)
  assert_close(x @ case.matrix, x64 @ case.dense, np.abs(x64) @ scale, case.dtype)
  assert_close(np.asarray(x) @ case.matrix, x64 @ case.dense, np.abs(x64) @ scale, case.dtype)


def test_spmm_promotes_mixed_dtypes():
  A = jsparse.CSR.fromdense(jnp.eye(3, dtype=jnp.bfloat16))
  out = jsparse.spmm(A, jnp.ones((3, 2), jnp.float32))
  assert out.dtype == jnp.float32


@pytest.mark.parametrize("fmt", ["coo", "csr", "bsr", "nm"])
def test_spmm_eager_and_jit_agree(fmt):
  rng = np.random.default_rng(1)
  dense = rng.standard_normal((8, 8)) * (rng.random((8, 8)) < 0.5)
  A = fromdense(fmt, dense, block_shape=(2, 4))
  b = rng.standard_normal((8, 3))
  np.testing.assert_allclose(jsparse.spmm(A, b), jax.jit(jsparse.spmm)(A, b), rtol=1e-12)


def test_spmm_rejects_bad_arguments():
  A = jsparse.CSR.fromdense(np.eye(4, 5))
  with pytest.raises(ValueError, match=r"B.shape\[0\].*A.shape\[1\].*expected 5, got 4"):
    jsparse.spmm(A, np.ones((4, 2)))
  with pytest.raises(ValueError, match="B must be 2-D"):
    jsparse.spmm(A, np.ones(5))
  with pytest.raises(TypeError, match="A must be a jsparse sparse matrix"):
    jsparse.spmm(np.eye(4, 5), np.ones((5, 2)))
  with pytest.raises(TypeError, match="B: complex64"):
    jsparse.spmm(A, np.ones((5, 2), np.complex64))
  with pytest.raises(ValueError, match="impl must be one of"):
    jsparse.spmm(A, np.ones((5, 2)), impl="cusparse")
  # Where a Pallas kernel is registered (a GPU, or JSPARSE_PALLAS_INTERPRET=1) it names what it
  # cannot take (float64 values); elsewhere the error says there is none.
  platform = "cuda" if jax.default_backend() == "gpu" else jax.default_backend()
  has_pallas = any(k.impl == "pallas" for k in jsparse.ops.registry.registered_kernels(
      "spmm", "csr", platform=platform))
  expected = ("impl='pallas'.*does not support this call: value dtype float64" if has_pallas
              else "impl='pallas'.*no pallas kernel")
  with pytest.raises(NotImplementedError, match=expected):
    jax.jit(lambda A, B: jsparse.spmm(A, B, impl="pallas"))(A, np.ones((5, 2)))


def test_spmm_on_real_dlmc_matrices():
  """Pruned Transformer weights (DLMC, shipped in tests/data) against SciPy in float64."""
  root = pathlib.Path(__file__).parents[1] / "data" / "dlmc"
  paths = sorted(root.rglob("*.smtx*"))
  assert paths, f"no DLMC matrices under {root}"
  rng = np.random.default_rng(11)
  for path in paths:
    A = jsparse.io.load_smtx(path, seed=int(rng.integers(1 << 31)), dtype=np.float64)
    reference = A.to_scipy()
    b = rng.standard_normal((A.shape[1], 32))
    for matrix in (A, A.tocoo(), A.tobsr((16, 16))):
      np.testing.assert_allclose(jax.jit(jsparse.spmm)(matrix, b), reference @ b, rtol=1e-10,
                                 atol=1e-10)
    np.testing.assert_allclose(jsparse.spmv(A, b[:, 0]), reference @ b[:, 0], rtol=1e-10,
                               atol=1e-10)


@given(case=cases(formats=("csr", "bsr", "nm")), data=st.data())
def test_matmul_transposed_is_x_times_a_transposed(case, data):
  impl = data.draw(st.sampled_from(impls_for("spmm", case.matrix.format)))
  x, x64 = case.operand(6, case.dense.shape[1])
  x3 = x.reshape(2, 3, -1)
  out = run_forced(impl, lambda: jax.jit(
      lambda A, x: jsparse.ops.matmul_transposed(x, A, impl=impl))(case.matrix, x3))
  if out is None:
    return
  assert out.shape == (2, 3, case.dense.shape[0]) and out.dtype == case.dtype
  assert_close(out.reshape(6, -1), x64 @ case.dense.T, np.abs(x64) @ np.abs(case.dense.T),
               case.dtype)


def test_matmul_transposed_marks_the_call_and_checks_x():
  dense = np.random.default_rng().standard_normal((5, 4)).astype(np.float32)
  matrix = jsparse.CSR.fromdense(dense)
  x = jnp.ones((3, 4), jnp.float32)
  jaxpr = jax.make_jaxpr(lambda x: jsparse.ops.matmul_transposed(x, matrix))(x)
  (call,) = [e for e in jaxpr.jaxpr.eqns if e.primitive is jsparse.ops.spmm_p]
  assert call.params["layout"].operand_transposed
  assert not matrix.layout.operand_transposed  # the matrix itself is unchanged
  with pytest.raises(ValueError, match="x.shape\\[-1\\]"):
    jsparse.ops.matmul_transposed(jnp.ones((3, 5)), matrix)
  with pytest.raises(ValueError, match="x must have at least one dimension"):
    jsparse.ops.matmul_transposed(jnp.float32(1.0), matrix)
  with pytest.raises(TypeError, match="x: complex64"):
    jsparse.ops.matmul_transposed(np.ones((3, 4), np.complex64), matrix)
  with pytest.raises(TypeError, match="A must be a jsparse sparse matrix"):
    jsparse.ops.matmul_transposed(x, dense)
