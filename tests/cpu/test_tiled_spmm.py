"""The C++ tiled (bitmap) SpMM and SpMV kernel (csrc/tiled.cc, tiled_kernels.h) against a
float64 reference, its registration and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._cpu import spmm
from jsparse.formats.layout import SparseLayout
from tests.cpu.extension import assert_close, random_operand, require_extension
from tests.helpers import to_float64

require_extension()


def random_tiled(rng, shape, density, dtype, tile_shape, index_dtype=None, empty_rows=()):
  """A Tiled of random magnitudes in [0.1, 1] (random signs) at ``density``, the rows in
  ``empty_rows`` zero, and its float64 dense copy."""
  values = rng.uniform(0.1, 1.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
  values = values * (rng.random(shape) < density)
  values[list(empty_rows)] = 0.0
  matrix = jsparse.Tiled.fromdense(jnp.asarray(values, dtype), tile_shape=tile_shape,
                                   index_dtype=index_dtype)
  return matrix, to_float64(matrix.todense())


def _spmm(matrix, b, impl="ffi"):
  return jax.jit(lambda A, B: jsparse.spmm(A, B, impl=impl))(matrix, b)


# Ragged shapes (not multiples of the tile), one row, one tile, tiles 256 wide, an empty matrix;
# each dtype and column count on several of them.
F32, BF16, F64 = jnp.float32, jnp.bfloat16, jnp.float64


@pytest.mark.parametrize("shape, tile_shape, density, dtype, columns", [
    ((40, 100), (16, 64), 0.3, F32, 1), ((40, 100), (16, 64), 0.3, BF16, 70),
    ((40, 100), (16, 64), 0.3, F64, 5), ((1, 300), (16, 64), 0.5, F32, 70),
    ((1, 300), (16, 64), 0.5, BF16, 1), ((16, 64), (16, 64), 0.9, F64, 70),
    ((16, 64), (16, 64), 0.9, F32, 5), ((33, 300), (8, 32), 0.2, BF16, 5),
    ((33, 300), (8, 32), 0.2, F32, 70), ((70, 520), (16, 128), 0.1, F64, 1),
    ((70, 520), (16, 128), 0.1, BF16, 70), ((9, 600), (4, 256), 0.4, F32, 1),
    ((9, 600), (4, 256), 0.4, F64, 70), ((20, 40), (16, 64), 0.0, BF16, 5),
    ((20, 40), (16, 64), 0.0, F32, 1)])
def test_spmm_matches_float64_reference(shape, tile_shape, density, dtype, columns):
  rng = np.random.default_rng()
  matrix, dense = random_tiled(rng, shape, density, dtype, tile_shape,
                               empty_rows=(0,) if shape[0] > 1 else ())
  b, b64 = random_operand(rng, (shape[1], columns), dtype)
  assert_close(_spmm(matrix, b), dense @ b64, np.abs(dense) @ np.abs(b64), dtype)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_spmm_split_across_threads_and_spmv(index_dtype):
  """Large enough for several chunks and threads; every other row empty."""
  rng = np.random.default_rng()
  matrix, dense = random_tiled(rng, (384, 700), 0.2, jnp.float32, (16, 64), index_dtype,
                               empty_rows=range(0, 384, 2))
  assert matrix.row_offsets.dtype == index_dtype
  b, b64 = random_operand(rng, (700, 96), jnp.float32)
  assert_close(_spmm(matrix, b), dense @ b64, np.abs(dense) @ np.abs(b64), jnp.float32)
  x, x64 = random_operand(rng, (700,), jnp.float32)
  y = jax.jit(lambda A, x: jsparse.spmv(A, x, impl="ffi"))(matrix, x)
  assert_close(y, dense @ x64, np.abs(dense) @ np.abs(x64), jnp.float32)


def test_padding_is_never_read():
  """Values past the last set bit are padding: NaN there changes nothing."""
  rng = np.random.default_rng()
  matrix, dense = random_tiled(rng, (24, 90), 0.4, jnp.float32, (16, 64))
  padded = jsparse.Tiled((jnp.concatenate([matrix.data, jnp.full((5,), jnp.nan)]),
                          jnp.concatenate([matrix.value_columns, jnp.zeros((5,), jnp.uint8)]),
                          matrix.bitmaps, matrix.row_offsets), shape=matrix.shape)
  b, b64 = random_operand(rng, (90, 3), jnp.float32)
  assert_close(_spmm(padded, b), dense @ b64, np.abs(dense) @ np.abs(b64), jnp.float32)


def test_lowers_to_the_kernel_and_transposes_fall_back():
  rng = np.random.default_rng()
  matrix, dense = random_tiled(rng, (20, 70), 0.5, jnp.float32, (16, 64))
  b = jnp.ones((70, 3), jnp.float32)
  for impl in ("ffi", "auto"):
    text = jax.jit(lambda A, B: jsparse.spmm(A, B, impl=impl)).lower(matrix, b).as_text()
    assert "jsparse_tiled_spmm" in text, impl
  # A.T @ B (gradients) runs the reference under auto, and forcing the kernel says why not.
  bt, bt64 = random_operand(rng, (20, 4), jnp.float32)
  auto = jax.jit(lambda A, B: jsparse.spmm(A, B, transpose_a=True))
  assert "jsparse_tiled_spmm" not in auto.lower(matrix, bt).as_text()
  assert_close(auto(matrix, bt), dense.T @ bt64, np.abs(dense.T) @ np.abs(bt64), jnp.float32)
  with pytest.raises(Exception, match="the tiled kernel computes A @ B only"):
    jsparse.spmm(matrix, bt, transpose_a=True, impl="ffi")


def test_supports_names_what_it_refuses():
  params = {"layout": SparseLayout("tiled", (20, 70)), "transpose": False, "impl": "ffi"}
  aval = jax.ShapeDtypeStruct
  avals = [aval((8,), jnp.float32), aval((8,), jnp.uint8), aval((2, 2, 16, 2), jnp.uint32),
           aval((2, 2, 16), jnp.int32), aval((70, 3), jnp.float32)]
  assert spmm.spmm_supports(avals, params) is True
  wrong_bits = [*avals[:2], aval((2, 2, 16, 2), jnp.int32), *avals[3:]]
  assert "bitmaps must be uint32" in spmm.spmm_supports(wrong_bits, params)
  wrong_offsets = [*avals[:3], aval((2, 2, 16), jnp.uint32), avals[4]]
  assert "row_offsets dtype uint32 not supported" in spmm.spmm_supports(wrong_offsets, params)
  f16 = [aval((8,), jnp.float16), *avals[1:4], aval((70, 3), jnp.float16)]
  assert "dtype float16 not supported" in spmm.spmm_supports(f16, params)


def _call(data, bitmaps, row_offsets, b, rows):
  call = jax.ffi.ffi_call("jsparse_tiled_spmm",
                          jax.ShapeDtypeStruct((rows, b.shape[1]), data.dtype))
  return call(data, bitmaps, row_offsets, b, transpose=False).block_until_ready()


def test_invalid_structure_raises_naming_argument():
  """Structure that validation would reject, passed to the FFI target directly."""
  rows, cols = 16, 40  # one 16x64 tile, its columns 40..63 outside K
  bitmaps = np.zeros((1, 1, 16, 2), np.uint32)
  bitmaps[0, 0, 3, 1] = 1 << 10  # column 42
  offsets = jnp.zeros((1, 1, 16), jnp.int32)
  b = jnp.ones((cols, 2), jnp.float32)
  with pytest.raises(jax.errors.JaxRuntimeError,
                     match=r"bitmaps\[0, 0, 3\] marks a column at or past K = 40"):
    _call(jnp.ones(4, jnp.float32), jnp.asarray(bitmaps), offsets, b, rows)
  bitmaps[0, 0, 3, 1] = 0
  bitmaps[0, 0, 5, 0] = 0b111  # three values from position 2 of a 4-value data
  with pytest.raises(jax.errors.JaxRuntimeError,
                     match=r"row_offsets\[0, 0, 5\] = 2: the tile row's values run outside data"):
    _call(jnp.ones(4, jnp.float32), jnp.asarray(bitmaps), offsets.at[0, 0, 5].set(2), b, rows)
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"bitmaps must have shape \(1, 1, 16, 2\)"):
    _call(jnp.ones(4, jnp.float32), jnp.zeros((2, 1, 16, 2), jnp.uint32),
          jnp.zeros((2, 1, 16), jnp.int32), b, rows)
  with pytest.raises(jax.errors.JaxRuntimeError, match=r"bitmaps must be uint32"):
    _call(jnp.ones(4, jnp.float32), jnp.zeros((1, 1, 16, 2), jnp.int32), offsets, b, rows)
