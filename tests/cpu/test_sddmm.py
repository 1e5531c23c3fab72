"""The C++ SDDMM kernels (jsparse/_cpu/sddmm.py, csrc/) against a float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from tests.cpu.extension import (assert_close, kernel_cases, random_matrix, random_operand,
                                 require_extension)

require_extension()


def _sddmm(pattern, x, y):
  return jax.jit(lambda P, X, Y: jsparse.sddmm(P, X, Y, impl="ffi"))(pattern, x, y)


def _stored_products(matrix, x64, y64):
  """x64[i] . y64[j] for every stored (i, j), in the shape of matrix.data (0 for padding), and
  the same with absolute values (the error scale). NumPy only: no compilation per shape."""
  rows, cols = matrix.shape
  if matrix.format == "nm":
    n, m = matrix.n, matrix.m
    indices = np.asarray(matrix.indices, np.int64)
    row = np.broadcast_to(np.arange(rows)[:, None], indices.shape)
    col = np.arange(indices.shape[1])[None, :] // n * m + indices
  elif matrix.format == "coo":
    row, col = np.asarray(matrix.row_indices), np.asarray(matrix.col_indices)
  else:
    offsets = np.asarray(matrix.row_offsets)
    nse = matrix.col_indices.shape[0]
    positions = np.arange(nse)
    # Padding positions get the row count, as in the formats' own convention.
    row = np.searchsorted(offsets, positions, side="right") - 1
    col = np.asarray(matrix.col_indices)
    if matrix.format == "bsr":
      bm, bk = matrix.block_shape
      row = row[:, None, None] * bm + np.arange(bm)[None, :, None]
      col = col[:, None, None] * bk + np.arange(bk)[None, None, :]
      row, col = np.broadcast_arrays(row, col)
  valid = (row < rows) & (col < cols)
  # Pad x and y with a zero row that the padding entries index.
  x64, y64 = (np.concatenate([a, np.zeros((1, a.shape[1]))]) for a in (x64, y64))
  row, col = np.where(valid, row, rows), np.where(valid, col, cols)
  products = np.where(valid, np.einsum("...d,...d->...", x64[row], y64[col]), 0.0)
  scale = np.where(valid, np.einsum("...d,...d->...", np.abs(x64[row]), np.abs(y64[col])), 0.0)
  return products, scale


def _check_sddmm(matrix, dense, rng, depth):
  rows, cols = dense.shape
  x, x64 = random_operand(rng, (rows, depth), matrix.dtype)
  y, y64 = random_operand(rng, (cols, depth), matrix.dtype)
  out = _sddmm(matrix, x, y)
  assert type(out) is type(matrix) and out.shape == matrix.shape
  expected, scale = _stored_products(matrix, x64, y64)
  # Padding entries must come out exactly 0: the bound there is 0.
  assert_close(out.data, expected, scale, matrix.dtype)


# 19: two 8-wide partial-sum passes and a remainder.
@settings(max_examples=30)
@given(case=kernel_cases(), depth=st.sampled_from([1, 4, 19]))
def test_sddmm_matches_float64_reference(case, depth):
  _check_sddmm(*case, depth)


@pytest.mark.parametrize("fmt, index_dtype", [("csr", np.int32), ("coo", np.int64),
                                              ("bsr", np.int64), ("nm", None)])
def test_sddmm_split_across_threads(fmt, index_dtype):
  rng = np.random.default_rng()
  # About 2M multiply-adds: above the 1M below which a call runs on one thread (csrc/common.h).
  matrix, dense = random_matrix(rng, fmt, (384, 256), 0.3, np.float32, index_dtype, pad=2,
                                block_shape=(2, 4), empty_rows=30, ragged=True)
  _check_sddmm(matrix, dense, rng, 64)


def test_sddmm_lowers_to_the_kernel_of_each_format():
  rng = np.random.default_rng()
  for fmt in ("coo", "csr", "bsr", "nm"):
    matrix, _ = random_matrix(rng, fmt, (8, 8), 0.5, np.float32)
    x = jnp.ones((8, 2), jnp.float32)
    text = jax.jit(lambda P, X: jsparse.sddmm(P, X, X, impl="auto").data).lower(
        matrix, x).as_text()
    assert f"jsparse_{fmt}_sddmm" in text, fmt


@pytest.mark.parametrize("fmt, arrays, message", [
    ("csr", ([0, 7], [0, 1, 2]), r"col_indices\[1\] = 7 is out of range \[0, 4\)"),
    ("csr", ([0, 1], [0, 2, 1]), r"row_offsets must be non-decreasing"),
    ("coo", ([0, 5], [1, 1]), r"entry 1 \(row_indices\[1\] = 5"),
])
def test_invalid_structure_raises_naming_argument(fmt, arrays, message):
  index_arrays = tuple(jnp.array(a, jnp.int32) for a in arrays)
  data = jnp.ones(2, jnp.float32)
  cls = {"csr": jsparse.CSR, "coo": jsparse.COO}[fmt]
  pattern = cls((data, *index_arrays), shape=(2, 4), validate=False)
  x = jnp.ones((2, 3), jnp.float32)
  with pytest.raises(jax.errors.JaxRuntimeError, match=message):
    _sddmm(pattern, x, jnp.ones((4, 3), jnp.float32)).data.block_until_ready()
