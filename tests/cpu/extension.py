"""Skips a C++ test module when the extension is not built (fails instead under CI's
``JSPARSE_REQUIRE_CPU_EXTENSION=1``), and the random operands the kernel tests share."""

from __future__ import annotations

import os
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from jsparse import _cpu
from tests.helpers import make_sparse, random_dense, random_nm_dense, to_float64

KERNEL_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float64)
INDEX_DTYPES = (np.int32, np.int64)
# Against a float64 reference, relative to |A| @ |B|: float32 accumulation error, or the final
# rounding of bfloat16 (8 mantissa bits).
RTOL = {np.dtype(jnp.float64): 1e-12, np.dtype(jnp.float32): 2e-6, np.dtype(jnp.bfloat16): 8e-3}


def require_extension() -> None:
  if _cpu.AVAILABLE:
    return
  if os.environ.get("JSPARSE_REQUIRE_CPU_EXTENSION") == "1":
    raise ImportError(f"jsparse._cpu extension is required but unavailable: {_cpu.IMPORT_ERROR}")
  pytest.skip(f"jsparse._cpu extension not built: {_cpu.IMPORT_ERROR}", allow_module_level=True)


def random_matrix(rng: np.random.Generator, fmt: str, shape: tuple[int, int], density: float,
                  dtype: Any, index_dtype: Any = np.int32, *, pad: int = 0,
                  block_shape=(2, 2), nm=(2, 4), empty_rows: int = 0, ragged: bool = False):
  """A random matrix of format ``fmt`` and its float64 dense copy.

  ``shape`` must fit the block shape (BSR) or m (NM).
  """
  if fmt == "nm":
    dense = random_nm_dense(rng, shape, *nm, dtype, density=density)
    return make_sparse("nm", dense, nm=nm), to_float64(dense)
  dense = random_dense(rng, shape, density, dtype, empty_rows=empty_rows, ragged=ragged)
  matrix = make_sparse(fmt, dense, pad=pad, block_shape=block_shape, index_dtype=index_dtype)
  return matrix, to_float64(dense)


@st.composite
def kernel_cases(draw, formats=("coo", "csr", "bsr", "nm"), max_dim: int = 11):
  """(matrix, dense float64 copy, rng): every format, kernel dtype and index dtype, zero-size
  and one-row shapes, empty rows, ragged rows, padding, block shapes and N:M patterns."""
  fmt = draw(st.sampled_from(formats))
  dtype = draw(st.sampled_from(KERNEL_DTYPES))
  index_dtype = draw(st.sampled_from(INDEX_DTYPES))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  step, options = (1, 1), {}
  if fmt == "bsr":
    step = options["block_shape"] = draw(st.sampled_from([(1, 1), (2, 3), (3, 2), (4, 1)]))
  if fmt == "nm":
    options["nm"] = draw(st.sampled_from([(2, 4), (1, 4), (4, 8), (3, 16), (1, 1)]))
    step = (1, options["nm"][1])
  rows = step[0] * draw(st.integers(0, max_dim // step[0] + 1))
  cols = step[1] * draw(st.integers(1 if fmt == "nm" else 0, max(1, max_dim // step[1])))
  density = draw(st.sampled_from([0.0, 0.15, 0.5, 1.0]))
  pad = 0 if fmt == "nm" else draw(st.sampled_from([0, 2]))
  matrix, dense = random_matrix(rng, fmt, (rows, cols), density, dtype, index_dtype, pad=pad,
                                empty_rows=draw(st.integers(0, 2)), ragged=draw(st.booleans()),
                                **options)
  return matrix, dense, rng


def random_operand(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any):
  """A dense operand of ``dtype`` (magnitudes in [0.1, 1], random signs) and its float64 copy."""
  values = rng.uniform(0.1, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
  array = jnp.asarray(values, dtype)
  return array, to_float64(array)


def assert_close(actual, expected: np.ndarray, scale: np.ndarray, dtype: Any) -> None:
  """|actual - expected| <= rtol(dtype) * scale elementwise; shape, dtype and finiteness too."""
  assert np.dtype(actual.dtype) == np.dtype(dtype), (actual.dtype, dtype)
  actual = to_float64(actual)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  assert np.isfinite(actual).all(), "non-finite output"
  bound = RTOL[np.dtype(dtype)] * scale + 1e-300
  error = np.abs(actual - expected)
  if error.size:
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert (error <= bound).all(), (
        f"max error {error[worst]} > bound {bound[worst]} at {worst} ({np.dtype(dtype)})")
