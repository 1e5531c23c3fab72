"""The C++ SpMM and SpMV kernels (jsparse/_cpu/spmm.py, csrc/) against a float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from tests.cpu.extension import (assert_close, kernel_cases, random_matrix, random_operand,
                                 require_extension)

require_extension()


def _spmm(A, B, transpose):
  return jax.jit(lambda A, B: jsparse.spmm(A, B, transpose_a=transpose, impl="ffi"))(A, B)


def _check_spmm(matrix, dense, rng, columns, transpose):
  a = dense.T if transpose else dense
  b, b64 = random_operand(rng, (a.shape[1], columns), matrix.dtype)
  assert_close(_spmm(matrix, b, transpose), a @ b64, np.abs(a) @ np.abs(b64), matrix.dtype)


# 70 columns: one full accumulator tile (64 float32 / 32 float64 values) and a partial one.
@settings(max_examples=30)
@given(case=kernel_cases(), columns=st.sampled_from([1, 5, 70]), transpose=st.booleans())
def test_spmm_matches_float64_reference(case, columns, transpose):
  _check_spmm(*case, columns, transpose)


@settings(max_examples=15)
@given(case=kernel_cases(), transpose=st.booleans())
def test_spmv_matches_float64_reference(case, transpose):
  matrix, dense, rng = case
  a = dense.T if transpose else dense
  x, x64 = random_operand(rng, (a.shape[1],), matrix.dtype)
  y = jax.jit(lambda A, x: jsparse.spmv(A, x, transpose_a=transpose, impl="ffi"))(matrix, x)
  assert_close(y, a @ x64, np.abs(a) @ np.abs(x64), matrix.dtype)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("fmt, index_dtype", [("csr", np.int32), ("csr", np.int64),
                                              ("coo", np.int64), ("bsr", np.int32),
                                              ("nm", None)])
def test_spmm_split_across_threads(fmt, index_dtype, transpose):
  """Large enough that rows (or output columns) are split into several chunks and threads;
  ragged rows and empty rows make the split by nonzero count uneven in rows."""
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, fmt, (384, 256), 0.2, np.float32, index_dtype, pad=3,
                                block_shape=(4, 2), nm=(2, 4), empty_rows=40, ragged=True)
  _check_spmm(matrix, dense, rng, 96, transpose)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("sorted_rows", [True, False])
@pytest.mark.parametrize("density", [0.2, 0.6])
def test_csr_spmm_wider_than_a_k_tile(dtype, index_dtype, sorted_rows, density):
  """K = 3000 spans several K tiles of B, a partial last one included: sorted rows run K-tiled
  (csr_kernels.h CsrKTile: density 0.6 takes L1 tiles of 32 KiB of B, 117 float32 rows at
  N = 70, except float64, whose B of 1.7 MB takes L2 tiles; density 0.2 takes L2 tiles, except
  bfloat16, whose runs in an L1 tile are long enough); rows with shuffled columns (which validation rejects, but traced data can carry) the untiled
  path; both must match the reference (empty and ragged rows too)."""
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, "csr", (40, 3000), density, dtype, index_dtype, pad=2,
                                empty_rows=5, ragged=True)
  if not sorted_rows:
    cols, data = np.array(matrix.col_indices), np.array(matrix.data)
    offsets = np.array(matrix.row_offsets)
    for start, stop in zip(offsets[:-1], offsets[1:]):
      order = start + rng.permutation(stop - start)
      cols[start:stop], data[start:stop] = cols[order], data[order]
    matrix = jsparse.CSR((jnp.asarray(data), jnp.asarray(cols), matrix.row_offsets),
                         shape=matrix.shape, validate=False)
  _check_spmm(matrix, dense, rng, 70, False)


@pytest.mark.parametrize("dtype, columns", [(jnp.float32, 32), (jnp.float64, 16),
                                             (jnp.bfloat16, 32)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape, density", [((300, 200), 0.1), ((40, 3000), 0.2),
                                            ((40, 3000), 0.6), ((2000, 300), 0.3)])
def test_csr_spmm_four_vector_rows(dtype, columns, index_dtype, shape, density):
  """Rows of exactly four 32-byte vectors (N = 32 float32, N = 16 float64) take the two-term loop
  (csr_kernels.h CsrRowPairs): untiled, L2- and L1-tiled (K = 3000), split across threads
  (2000 rows), rows of odd and even lengths, empty ones included; bfloat16 at N = 32 keeps the
  general loop. All must match the float64 reference."""
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, "csr", shape, density, dtype, index_dtype, pad=3,
                                empty_rows=5, ragged=True)
  _check_spmm(matrix, dense, rng, columns, False)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("transpose", [False, True])
def test_coo_spmm_sorted_and_unsorted_entries(dtype, index_dtype, transpose):
  """COO entries sorted by row run as CSR (row offsets found in the kernel), others scatter:
  both must match the float64 reference, with padding last (sorted) or anywhere (unsorted),
  empty and ragged rows, and columns out of order within a row."""
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, "coo", (300, 200), 0.1, dtype, index_dtype, pad=5,
                                empty_rows=20, ragged=True)
  data, rows, cols = (np.array(a) for a in (matrix.data, matrix.row_indices, matrix.col_indices))
  by_row = np.lexsort((rng.permutation(len(rows)), rows))  # sorted by row, random within one
  for order in (by_row, rng.permutation(len(rows))):
    shuffled = jsparse.COO((jnp.asarray(data[order]), jnp.asarray(rows[order]),
                            jnp.asarray(cols[order])), shape=matrix.shape, validate=False)
    _check_spmm(shuffled, dense, rng, 40, transpose)


def test_spmm_lowers_to_the_kernel_of_each_format():
  rng = np.random.default_rng()
  for fmt in ("coo", "csr", "bsr", "nm"):
    matrix, _ = random_matrix(rng, fmt, (8, 8), 0.5, np.float32)
    for impl in ("ffi", "auto"):
      text = jax.jit(lambda A, B: jsparse.spmm(A, B, impl=impl)).lower(
          matrix, jnp.ones((8, 3), jnp.float32)).as_text()
      assert f"jsparse_{fmt}_spmm" in text, (fmt, impl)


@pytest.mark.parametrize("fmt", ["csr", "coo"])
def test_padding_is_never_read(fmt):
  """Padding holds NaN values (and, for CSR, wild column indices): it must change nothing."""
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, fmt, (6, 5), 0.5, np.float32)
  stored = int(matrix.data.shape[0])
  data = jnp.concatenate([matrix.data, jnp.full((4,), jnp.nan, jnp.float32)])
  if fmt == "csr":
    cols = jnp.concatenate([matrix.col_indices, jnp.array([-1, 5, 99, 2**31 - 1], jnp.int32)])
    padded = jsparse.CSR((data, cols, matrix.row_offsets), shape=(6, 5), validate=False)
  else:
    fill = lambda index, bound: jnp.concatenate([index, jnp.full((4,), bound, jnp.int32)])
    padded = jsparse.COO((data, fill(matrix.row_indices, 6), fill(matrix.col_indices, 5)),
                         shape=(6, 5), validate=False)
  assert stored + 4 == padded.data.shape[0]
  for transpose in (False, True):
    a = dense.T if transpose else dense
    b, b64 = random_operand(rng, (a.shape[1], 3), np.float32)
    assert_close(_spmm(padded, b, transpose), a @ b64, np.abs(a) @ np.abs(b64), np.float32)


def _csr(cols, offsets, shape):
  return jsparse.CSR((jnp.ones(len(cols), jnp.float32), jnp.array(cols, jnp.int32),
                      jnp.array(offsets, jnp.int32)), shape=shape, validate=False)


def _coo(rows, cols, shape):
  return jsparse.COO((jnp.ones(len(rows), jnp.float32), jnp.array(rows, jnp.int64),
                      jnp.array(cols, jnp.int64)), shape=shape, validate=False)


def _bsr(cols, offsets, shape, block_shape=(2, 2)):
  return jsparse.BSR((jnp.ones((len(cols), *block_shape), jnp.float32),
                      jnp.array(cols, jnp.int32), jnp.array(offsets, jnp.int32)), shape=shape,
                     validate=False)


def _nm(indices, shape):
  indices = jnp.array(indices, jnp.uint8)
  return jsparse.NM((jnp.ones(indices.shape, jnp.float32), indices), shape=shape, n=2, m=4,
                    validate=False)


# Structure that validation would reject, reaching the kernel from traced (unvalidated) data.
INVALID = [
    (_csr([0, 1, 4, 2], [0, 2, 4], (2, 4)), r"col_indices\[2\] = 4 is out of range \[0, 4\)"),
    (_csr([0, 1, -1, 2], [0, 2, 4], (2, 4)), r"col_indices\[2\] = -1 is out of range"),
    (_csr([0, 1, 2, 3], [0, 3, 2], (2, 4)),
     r"row_offsets must be non-decreasing.*row_offsets\[2\] = 2"),
    (_csr([0, 1, 2, 3], [0, 2, 5], (2, 4)), r"row_offsets\[2\] = 5 exceeds nse = 4"),
    (_csr([0, 1, 2, 3], [1, 2, 4], (2, 4)), r"row_offsets\[0\] must be 0, got 1"),
    (_coo([0, 1, 2], [0, 4, 1], (2, 4)), r"entry 1 \(row_indices\[1\] = 1, col_indices\[1\] = 4\)"),
    (_coo([0, -1], [0, 1], (2, 4)), r"entry 1 \(row_indices\[1\] = -1"),
    (_coo([0, 2], [0, 3], (2, 4)), r"entry 1 .* is not padding \(2, 4\)"),
    (_bsr([0, 2], [0, 1, 2], (4, 4)), r"col_indices\[1\] = 2 is out of range \[0, 2\)"),
    (_bsr([0, 1], [0, 2, 1], (4, 4)), r"row_offsets must be non-decreasing"),
    (_nm([[0, 1, 2, 3], [1, 4, 0, 1]], (2, 8)), r"indices\[1, 1\] = 4 is out of range \[0, 4\)"),
]


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("matrix, message", INVALID)
def test_invalid_structure_raises_naming_argument(matrix, message, transpose):
  rows, cols = matrix.shape
  b = jnp.ones((rows if transpose else cols, 3), jnp.float32)
  with pytest.raises(jax.errors.JaxRuntimeError, match=message):
    _spmm(matrix, b, transpose).block_until_ready()


def test_kernel_rejects_inconsistent_buffers():
  """Shapes the primitive never produces, passed to the FFI target directly."""
  call = jax.ffi.ffi_call("jsparse_csr_spmm", jax.ShapeDtypeStruct((2, 3), jnp.float32))
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"col_indices must have shape \(3\)"):
    call(jnp.ones(3, jnp.float32), jnp.zeros(2, jnp.int32), jnp.array([0, 1, 2], jnp.int32),
         jnp.ones((4, 3), jnp.float32), transpose=False).block_until_ready()
  with pytest.raises(jax.errors.JaxRuntimeError,
                     match=r"row_offsets must have the dtype of col_indices \(int32\), got int64"):
    call(jnp.ones(2, jnp.float32), jnp.zeros(2, jnp.int32), jnp.array([0, 1, 2], jnp.int64),
         jnp.ones((4, 3), jnp.float32), transpose=False).block_until_ready()
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"data must be float32, float64 or "
                                                       r"bfloat16, got float16"):
    jax.ffi.ffi_call("jsparse_csr_spmm", jax.ShapeDtypeStruct((2, 3), jnp.float16))(
        jnp.ones(2, jnp.float16), jnp.zeros(2, jnp.int32), jnp.array([0, 1, 2], jnp.int32),
        jnp.ones((4, 3), jnp.float16), transpose=False).block_until_ready()
