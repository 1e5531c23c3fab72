"""Tests of the C++ CSR SpMV kernel (csrc/csr_spmv.cc) through its jax.ffi wrapper."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from jsparse import _cpu
from jsparse._cpu import csr
from jsparse.formats.layout import SparseLayout
from jsparse.ops import registry

if not _cpu.AVAILABLE:
  # CI sets JSPARSE_REQUIRE_CPU_EXTENSION=1 so that a missing build fails instead of skipping.
  if os.environ.get("JSPARSE_REQUIRE_CPU_EXTENSION") == "1":
    raise ImportError(f"jsparse._cpu extension is required but unavailable: {_cpu.IMPORT_ERROR}")
  pytest.skip(f"jsparse._cpu extension not built: {_cpu.IMPORT_ERROR}", allow_module_level=True)


def _random_csr(rng: np.random.Generator, shape: tuple[int, int],
                density: float) -> scipy.sparse.csr_array:
  matrix = scipy.sparse.random_array(shape, density=density, format="csr", dtype=np.float64,
                                     rng=rng, data_sampler=rng.standard_normal)
  return scipy.sparse.csr_array(matrix)


def _spmv(data, col_indices, row_offsets, x, shape):
  return jax.jit(csr.csr_spmv_ffi, static_argnames=("layout", "transpose"))(
      data, col_indices, row_offsets, x, layout=SparseLayout("csr", shape), transpose=False)


def _operands(matrix: scipy.sparse.csr_array, x: np.ndarray, dtype=np.float32):
  return (jnp.asarray(matrix.data, dtype), jnp.asarray(matrix.indices, jnp.int32),
          jnp.asarray(matrix.indptr, jnp.int32), jnp.asarray(x, dtype))


def _check_against_scipy(matrix: scipy.sparse.csr_array, x: np.ndarray, dtype, rtol: float):
  y = _spmv(*_operands(matrix, x, dtype), matrix.shape)
  assert y.shape == (matrix.shape[0],) and y.dtype == dtype
  # Compare with float64 on the inputs as the kernel saw them (rounded to dtype), with an
  # absolute slack scaled by |A| @ |x| so that cancellation does not fail the check.
  rounded = scipy.sparse.csr_array(
      (np.asarray(matrix.data.astype(dtype), np.float64), matrix.indices, matrix.indptr),
      shape=matrix.shape)
  x_rounded = np.asarray(x.astype(dtype), np.float64)
  expected = rounded @ x_rounded
  scale = abs(rounded) @ np.abs(x_rounded)
  np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=rtol,
                             atol=rtol * scale.max(initial=0))


@pytest.mark.parametrize("shape, density", [
    ((1, 1), 1.0),
    ((1, 1), 0.0),
    ((5, 3), 0.0),
    ((7, 11), 0.1),  # Mostly empty rows.
    ((11, 7), 0.5),
    ((64, 48), 0.2),
    ((3, 200), 0.9),
    ((0, 4), 0.0),
    ((4, 0), 0.0),
])
def test_matches_scipy_float32(shape, density):
  rng = np.random.default_rng()
  matrix = _random_csr(rng, shape, density)
  _check_against_scipy(matrix, rng.standard_normal(shape[1]), np.float32, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 40), cols=st.integers(0, 40), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_matches_scipy_random_shapes(rows, cols, density, seed):
  rng = np.random.default_rng(seed)
  matrix = _random_csr(rng, (rows, cols), density)
  _check_against_scipy(matrix, rng.standard_normal(cols), np.float32, rtol=1e-5)


def test_matches_scipy_float64():
  rng = np.random.default_rng()
  matrix = _random_csr(rng, (30, 20), 0.3)
  with jax.enable_x64(True):
    _check_against_scipy(matrix, rng.standard_normal(20), np.float64, rtol=1e-12)


def test_matches_scipy_bfloat16():
  rng = np.random.default_rng()
  matrix = _random_csr(rng, (30, 20), 0.3)
  # Accumulated in float32; the error is the final rounding to bfloat16 (8 bits of mantissa).
  _check_against_scipy(matrix, rng.standard_normal(20), jnp.bfloat16, rtol=2**-7)


def test_ignores_padding_after_last_row():
  rng = np.random.default_rng()
  matrix = _random_csr(rng, (6, 5), 0.4)
  x = rng.standard_normal(5)
  data, col_indices, row_offsets, x_array = _operands(matrix, x)
  # Padding holds NaN values and out-of-range columns: it must be neither read nor validated.
  padded_data = jnp.concatenate([data, jnp.full((4,), jnp.nan, jnp.float32)])
  padded_cols = jnp.concatenate([col_indices, jnp.array([-1, 5, 99, 2**31 - 1], jnp.int32)])
  y = _spmv(padded_data, padded_cols, row_offsets, x_array, matrix.shape)
  np.testing.assert_allclose(np.asarray(y), _spmv(data, col_indices, row_offsets, x_array,
                                                  matrix.shape))
  np.testing.assert_allclose(np.asarray(y), matrix @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("col_indices, row_offsets, message", [
    ([0, 1, 4, 2], [0, 2, 4], r"col_indices\[2\] = 4 is out of range"),
    ([0, 1, -1, 2], [0, 2, 4], r"col_indices\[2\] = -1 is out of range"),
    ([0, 1, 2, 3], [0, 3, 2], r"row_offsets must be non-decreasing.*row_offsets\[2\] = 2"),
    ([0, 1, 2, 3], [0, 2, 5], r"row_offsets\[2\] = 5 exceeds nse = 4"),
    ([0, 1, 2, 3], [1, 2, 4], r"row_offsets\[0\] must be 0, got 1"),
])
def test_invalid_structure_raises_naming_argument(col_indices, row_offsets, message):
  data = jnp.ones((4,), jnp.float32)
  x = jnp.ones((4,), jnp.float32)
  with pytest.raises(jax.errors.JaxRuntimeError, match=message):
    _spmv(data, jnp.array(col_indices, jnp.int32), jnp.array(row_offsets, jnp.int32), x,
          (2, 4)).block_until_ready()


def test_mismatched_lengths_raise():
  with pytest.raises(jax.errors.JaxRuntimeError, match="data and col_indices"):
    _spmv(jnp.ones((3,), jnp.float32), jnp.zeros((2,), jnp.int32),
          jnp.array([0, 1, 2], jnp.int32), jnp.ones((4,), jnp.float32),
          (2, 4)).block_until_ready()


def _aval(shape, dtype):
  return jax.ShapeDtypeStruct(shape, dtype)


def test_supports():
  f32_avals = [_aval((8,), jnp.float32), _aval((8,), jnp.int32), _aval((4,), jnp.int32),
               _aval((5,), jnp.float32)]
  params = {"layout": SparseLayout("csr", (3, 5)), "transpose": False, "impl": "ffi"}
  assert csr.csr_spmv_supports(f32_avals, params) is True
  assert "transpose=True" in csr.csr_spmv_supports(f32_avals, {**params, "transpose": True})
  f16_avals = [_aval((8,), jnp.float16)] + f32_avals[1:3] + [_aval((5,), jnp.float16)]
  assert "dtype float16 not supported" in csr.csr_spmv_supports(f16_avals, params)
  int64_avals = [f32_avals[0], _aval((8,), jnp.int64)] + f32_avals[2:]
  assert "index dtype int64 not supported" in csr.csr_spmv_supports(int64_avals, params)


def test_registered_as_cpu_ffi_kernel():
  kernels = {kernel.impl: kernel for kernel in registry.registered_kernels("spmv", "csr", "cpu")}
  assert kernels["ffi"].fn is csr.csr_spmv_ffi
  assert kernels["ffi"].supports is csr.csr_spmv_supports


@pytest.mark.parametrize("impl", ["ffi", "auto"])
def test_public_spmv_lowers_to_the_kernel(impl):
  import jsparse
  rng = np.random.default_rng()
  matrix = _random_csr(rng, (37, 23), 0.3)
  A = jsparse.CSR.from_scipy(matrix).astype(jnp.float32)
  x = jnp.asarray(rng.standard_normal(23), jnp.float32)
  spmv = jax.jit(lambda A, x: jsparse.spmv(A, x, impl=impl))
  assert "jsparse_csr_spmv_f32" in spmv.lower(A, x).as_text()
  np.testing.assert_allclose(spmv(A, x), matrix @ np.asarray(x, np.float64), rtol=1e-5, atol=1e-5)
  # Under "auto" the gradient's transposed SpMV, which the kernel lacks, falls back to reference.
  grad = jax.grad(lambda x: jnp.sum(jsparse.spmv(A, x, impl="auto") ** 2))(x)
  expected = 2 * matrix.T @ (matrix @ np.asarray(x, np.float64))
  np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4)
