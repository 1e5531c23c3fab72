"""The checks of ``jsparse/formats/validation.py``: one test per rule, on every format it covers.

CSR and BSR share the compressed-index rules; BSR's indices count blocks, so the same index arrays
describe a [3, 4] CSR matrix and a [6, 8] BSR matrix of [2, 2] blocks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse.formats import validation
from tests.helpers import FORMATS


def compressed(fmt: str, col_indices, row_offsets, *, data_dtype=np.float32, nse=None, **kwargs):
  """A CSR [3, 4] or BSR [6, 8] (blocks [2, 2]) matrix with the given index arrays.

  ``nse`` (default: the length of col_indices) sets the number of stored values.
  """
  nse = len(col_indices) if nse is None else nse
  if fmt == "csr":
    data, shape = np.ones(nse, data_dtype), (3, 4)
  else:
    data, shape = np.ones((nse, 2, 2), data_dtype), (6, 8)
  cls = {"csr": jsparse.CSR, "bsr": jsparse.BSR}[fmt]
  return cls((data, np.asarray(col_indices), np.asarray(row_offsets)), shape=shape, **kwargs)


def valid_arrays(fmt: str) -> tuple[tuple, dict]:
  """Arguments of a valid matrix of each format, shape (2, 4) (BSR: (2, 4) blocks of [1, 2])."""
  ones = np.ones(2, np.float32)
  arrays = {"coo": (ones, np.array([0, 1]), np.array([1, 2])),
            "csr": (ones, np.array([1, 2]), np.array([0, 1, 2])),
            "bsr": (np.ones((2, 1, 2), np.float32), np.array([0, 1]), np.array([0, 1, 2])),
            "nm": (np.ones((2, 2), np.float32), np.zeros((2, 2), np.uint8) + [0, 1])}[fmt]
  return arrays, ({"n": 2, "m": 4} if fmt == "nm" else {})


COMPRESSED = pytest.mark.parametrize("fmt", ["csr", "bsr"])


@COMPRESSED
@pytest.mark.parametrize("col_indices, row_offsets, match", [
    ([0, 4], [0, 1, 2, 2], r"col_indices out of range: col_indices\[1\] = 4, "
                           r"expected 0 <= index < 4"),
    ([-1, 2], [0, 1, 2, 2], r"col_indices out of range: col_indices\[0\] = -1"),
    # Padding positions (past row_offsets[-1]) must index in range too: kernels may read them.
    ([0, 4], [0, 1, 1, 1], r"col_indices out of range: col_indices\[1\] = 4"),
    ([0, 1], [1, 1, 2, 2], r"row_offsets\[0\] must be 0, got 1"),
    ([0, 1], [0, 2, 1, 2], r"row_offsets must be non-decreasing, but row_offsets\[2\] = 1 < "
                           r"row_offsets\[1\] = 2"),
    ([0, 1], [0, 1, 2, 3], r"row_offsets\[-1\] = 3 exceeds the number of stored entries \(2\)"),
    ([2, 1], [0, 2, 2, 2], r"col_indices must be sorted and unique within each row: unsorted "
                           r"entry at position 1 \(row 0\): 2 then 1"),
    ([0, 3, 3], [0, 1, 3, 3], r"col_indices must be sorted and unique within each row: duplicate "
                              r"entry at position 2 \(row 1\): 3 then 3"),
])
def test_bad_compressed_indices_raise(fmt, col_indices, row_offsets, match):
  with pytest.raises(ValueError, match=match):
    compressed(fmt, col_indices, row_offsets)


@COMPRESSED
def test_columns_may_decrease_across_rows_and_rows_may_be_empty(fmt):
  matrix = compressed(fmt, [3, 0, 2], [0, 1, 1, 3])
  assert matrix.nse == 3


@COMPRESSED
@pytest.mark.parametrize("col_indices, row_offsets, data_dtype, error, match", [
    ([0, 1], [0, 1, 2, 2], np.int32, TypeError, r"data must have a floating dtype \(float16, "
                                                r"bfloat16, float32 or float64\), got int32"),
    ([0.0, 1.0], [0, 1, 2, 2], np.float32, TypeError,
     "col_indices must have an integer dtype, got float"),
    ([0, 1], [0.0, 1.0, 2.0, 2.0], np.float32, TypeError,
     "row_offsets must have an integer dtype, got float"),
    ([0, 1], [0, 1, 2], np.float32, ValueError,
     r"row_offsets must have shape \(4,\) \(number of rows \+ 1\), got \(3,\)"),
    ([[0, 1]], [0, 1, 2, 2], np.float32, ValueError, r"col_indices must have shape \(2,\)"),
])
def test_bad_compressed_arrays_raise(fmt, col_indices, row_offsets, data_dtype, error, match):
  with pytest.raises(error, match=match):
    compressed(fmt, col_indices, row_offsets, data_dtype=data_dtype, nse=2)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape, error, match", [
    ((2,), ValueError, r"shape must be a pair of non-negative ints \(M, K\), got \(2,\)"),
    ((2, 4, 1), ValueError, "shape must be a pair"),
    ((-2, 4), ValueError, r"shape must be a pair of non-negative ints \(M, K\), got \(-2, 4\)"),
    (None, TypeError, r"shape must be a pair of ints \(M, K\), got None"),
    (8, TypeError, "shape must be a pair of ints"),
])
def test_bad_shape_argument_raises(fmt, shape, error, match):
  arrays, kwargs = valid_arrays(fmt)
  with pytest.raises(error, match=match):
    type_of(fmt)(arrays, shape=shape, **kwargs)


@pytest.mark.parametrize("shape", [(2.5, 4), ("ab", 4), (2, np.float32(4))])
def test_non_integer_shape_raises_naming_shape(shape):
  """Not truncated to ints: (2.5, 4) is an error, not (2, 4)."""
  arrays, kwargs = valid_arrays("csr")
  with pytest.raises(TypeError, match=r"shape must be a pair of ints \(M, K\)"):
    jsparse.CSR(arrays, shape=shape, **kwargs)


def test_numpy_integer_shape_is_accepted():
  arrays, kwargs = valid_arrays("csr")
  matrix = jsparse.CSR(arrays, shape=(np.int64(2), np.int32(4)), **kwargs)
  assert matrix.shape == (2, 4) and all(type(d) is int for d in matrix.shape)


@pytest.mark.parametrize("fmt", FORMATS)
def test_valid_arrays_pass(fmt):
  arrays, kwargs = valid_arrays(fmt)
  matrix = type_of(fmt)(arrays, shape=(2, 4), validate=True, **kwargs)
  assert matrix.shape == (2, 4)


def type_of(fmt: str) -> type:
  return {"coo": jsparse.COO, "csr": jsparse.CSR, "bsr": jsparse.BSR, "nm": jsparse.NM}[fmt]


# -- when the checks run ---------------------------------------------------------------------------


@COMPRESSED
def test_validate_false_skips_value_checks_but_not_shape_checks(fmt):
  matrix = compressed(fmt, [9, 1], [0, 2, 1, 5], validate=False)
  assert matrix.nse == 2
  with pytest.raises(ValueError, match=r"row_offsets must have shape \(4,\)"):
    compressed(fmt, [9, 1], [0, 2], validate=False)
  with pytest.raises(TypeError, match="data must have a floating dtype"):
    compressed(fmt, [0, 1], [0, 1, 2, 2], data_dtype=np.int32, validate=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_checks_are_skipped_under_jit(fmt):
  """Traced index arrays cannot be read: the constructor builds the matrix unchecked."""
  arrays, kwargs = valid_arrays(fmt)
  # Out of range in every format (and a decreasing group for NM): caught when concrete.
  bad = (arrays[0], *(np.full_like(index, 7) for index in arrays[1:]))
  if fmt == "nm":
    bad = (arrays[0], np.array([[1, 0], [0, 1]], np.uint8))
  with pytest.raises(ValueError):
    type_of(fmt)(bad, shape=(2, 4), **kwargs)

  @jax.jit
  def build(*arrays):
    return type_of(fmt)(arrays, shape=(2, 4), **kwargs)

  matrix = build(*bad)
  assert type(matrix) is type_of(fmt) and matrix.shape == (2, 4)
  # Shape and dtype checks still run under jit.
  with pytest.raises(TypeError, match="data must have a floating dtype"):
    build(jnp.ones(arrays[0].shape, jnp.int32), *arrays[1:])


@pytest.mark.parametrize("fmt", FORMATS)
def test_validate_true_under_jit_raises(fmt):
  arrays, kwargs = valid_arrays(fmt)
  build = jax.jit(lambda *arrays: type_of(fmt)(arrays, shape=(2, 4), validate=True, **kwargs))
  with pytest.raises(ValueError, match="validate=True needs concrete arrays"):
    build(*arrays)


def test_checks_are_skipped_under_vmap():
  offsets = np.array([[0, 1, 2], [0, 2, 2]], np.int32)
  cols = np.array([[1, 0], [0, 1]], np.int32)
  dense = jax.vmap(lambda c, r: jsparse.CSR((jnp.ones(2), c, r), shape=(2, 2)).todense())(
      cols, offsets)
  np.testing.assert_array_equal(dense, [[[0, 1], [1, 0]], [[1, 1], [0, 0]]])


def test_index_dtype_for():
  assert validation.index_dtype_for(3, 4, 12) == np.int32
  assert validation.index_dtype_for(validation.INT32_MAX) == np.int32
  assert validation.index_dtype_for(4, validation.INT32_MAX + 1) == np.int64  # x64 is on
