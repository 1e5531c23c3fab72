"""jsparse._gpu.tiled_gemv: the CUDA-core tiled kernel against float64, on a CUDA GPU (built
with nvcc on first use). Skipped where JAX sees no GPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import tiled_gemv

from tests.gpu.test_sparse_mma import check, random_tiled

pytestmark = pytest.mark.gpu

Config = tiled_gemv.TiledGemvConfig


def expected_product(matrix, x):
  return np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)


def columns(seed, k, n, dtype):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((k, n)), dtype)


# Ragged: M not a multiple of 16 (and 1), K not of 64 (and 2), one tile, 70 K tiles; dense
# tiles (every value of a word: odd and even ends), very sparse ones (mostly empty words).
@pytest.mark.parametrize("shape,density,dtype", [
    ((16, 64), 0.3, jnp.bfloat16), ((40, 100), 0.3, jnp.float16), ((1, 64), 1.0, jnp.bfloat16),
    ((33, 2), 0.5, jnp.bfloat16), ((300, 1000), 0.05, jnp.bfloat16),
    ((256, 4096), 0.3, jnp.float16), ((130, 640), 1.0, jnp.float16),
    ((40, 64 * 70), 0.2, jnp.bfloat16)])
def test_default_launch_against_float64(shape, density, dtype):
  matrix = random_tiled(sum(shape), shape, density, dtype)
  for n in (1, 2, 3, 4):
    x = columns(n, shape[1], n, dtype)
    out = tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=shape)
    assert out.shape == (shape[0], n) and out.dtype == jnp.dtype(dtype)
    check(out, expected_product(matrix, x))


# Warps past the last row tile (3 row tiles against blocks of 2-16), several warps a row tile
# taking its 70 K tiles in turn, K splits (more splits than some get tiles), each x source.
@pytest.mark.parametrize("config", [Config(1, 1, 1), Config(2, 16, 1), Config(3, 3, 2),
                                    Config(16, 16, 1, "16-bit"), Config(1, 8, 7, "16-bit"),
                                    Config(2, 4, 64), Config(1, 16, 1, "16-bit"),
                                    Config(2, 8, 3, "global"), Config(2, 32, 1, "16-bit"),
                                    Config(1, 32, 1, "16-bit")])
def test_launches(config):
  shape = (40, 64 * 70)
  matrix = random_tiled(3, shape, 0.3, jnp.bfloat16)
  for n in (1, 2, 4) if config.fits(4, shape[1]) else (1,):
    x = columns(n, shape[1], n, jnp.bfloat16)
    check(tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=shape,
                          config=config), expected_product(matrix, x))


def mixed_tiles(seed, shape, dtype, padding=0):
  """A Tiled matrix whose 16x64 tiles are empty, sparse, half full or full, in random order;
  ``padding`` values of 1e4 after the last."""
  rng = np.random.default_rng(seed)
  dense = rng.standard_normal(shape)
  tiles = (-(-shape[0] // 16), -(-shape[1] // 64))
  density = rng.choice([0.0, 0.05, 0.3, 0.5, 0.6, 1.0], size=tiles)
  keep = rng.random(shape) < np.kron(density, np.ones((16, 64)))[:shape[0], :shape[1]]
  matrix = jsparse.Tiled.fromdense(jnp.asarray(dense * keep, dtype), tile_shape=(16, 64))
  if padding:
    matrix = jsparse.Tiled(
        (jnp.concatenate([matrix.data, jnp.full((padding,), 1e4, dtype)]),
         jnp.concatenate([matrix.value_columns, jnp.zeros((padding,), jnp.uint8)]),
         matrix.bitmaps, matrix.row_offsets), shape=shape)
  return matrix


@pytest.mark.parametrize("config", [None, Config(1, 1, 1, "float32"), Config(2, 2, 3, "global")])
@pytest.mark.parametrize("padding", [0, 13])
def test_tiles_of_mixed_fill_and_padding_past_the_last_value(config, padding):
  # A warp's consecutive tiles differ in fill (0 to 1024 values); the padding after the last
  # tile's values must never be read as a value.
  shape = (37, 64 * 9 + 5)
  matrix = mixed_tiles(11, shape, jnp.bfloat16, padding)
  x = columns(2, shape[1], 1, jnp.bfloat16)
  check(tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=shape,
                        config=config), expected_product(matrix, x))


def test_zero_matrix_and_jit_vmap():
  zero = jsparse.Tiled.fromdense(jnp.zeros((48, 256), jnp.bfloat16), tile_shape=(16, 64))
  out = tiled_gemv.gemv(zero.data, zero.bitmaps, zero.row_offsets,
                        jnp.ones((256, 1), jnp.bfloat16), shape=(48, 256))
  assert out.shape == (48, 1) and not np.asarray(out, np.float32).any()
  matrix = random_tiled(5, (64, 320), 0.3, jnp.bfloat16)
  xs = jnp.asarray(np.random.default_rng(0).standard_normal((3, 320, 2)), jnp.bfloat16)
  out = jax.jit(jax.vmap(lambda x: tiled_gemv.gemv(matrix.data, matrix.bitmaps,
                                                   matrix.row_offsets, x,
                                                   shape=matrix.shape)))(xs)
  for i in range(3):
    check(out[i], expected_product(matrix, xs[i]))


def test_handler_refuses_bad_launches_naming_them():
  # The FFI handler checks what TiledGemvConfig checks in Python, for direct calls of the target.
  shape = (32, 128)
  matrix = random_tiled(5, shape, 0.3, jnp.bfloat16)
  tiled_gemv.load()

  def call(x, m_tiles=1, warps=8, k_splits=1, x_source=0):
    out = (jax.ShapeDtypeStruct((shape[0], x.shape[1]), x.dtype) if k_splits == 1 else
           jax.ShapeDtypeStruct((k_splits, shape[0], x.shape[1]), jnp.float32))
    return jax.block_until_ready(jax.ffi.ffi_call(tiled_gemv.TARGET, out)(
        matrix.data, matrix.bitmaps, matrix.row_offsets.astype(jnp.int32), x,
        m=np.int64(shape[0]), k=np.int64(shape[1]), m_tiles=np.int64(m_tiles),
        warps=np.int64(warps), k_splits=np.int64(k_splits), x_source=np.int64(x_source)))

  x = jnp.ones((shape[1], 1), jnp.bfloat16)
  with pytest.raises(Exception, match="m_tiles must divide warps"):
    call(x, m_tiles=3)
  with pytest.raises(Exception, match="N must be 1..4, got 5"):
    call(jnp.ones((shape[1], 5), jnp.bfloat16))
  with pytest.raises(Exception, match="x read from global memory \\(x_source 2\\) needs N = 1"):
    call(jnp.ones((shape[1], 2), jnp.bfloat16), x_source=2)
  with pytest.raises(Exception, match="warps must be 1..32 at N = 1, 1..16 at N = 2..4, got 32"):
    call(jnp.ones((shape[1], 2), jnp.bfloat16), warps=32)
  with pytest.raises(Exception, match="x_source must be 0, 1 or 2"):
    call(x, x_source=3)
  with pytest.raises(Exception, match="data must have x's dtype"):
    call(x.astype(jnp.float16))


def test_public_op_takes_it_for_few_columns():
  from jsparse._gpu import sparse_mma, structured  # noqa: F401 - registers the routing lowering
  shape = (300, 1000)
  matrix = random_tiled(9, shape, 0.1, jnp.bfloat16)
  fill = sparse_mma.mean_tile_fill(matrix.data, matrix.bitmaps)
  for n in tiled_gemv.ROUTE_MAX_FILL:
    assert tiled_gemv.routes(n, fill)
    x = columns(n, shape[1], n, jnp.bfloat16)
    check(jsparse.spmm(matrix, x, impl="pallas"), expected_product(matrix, x))
    check(jsparse.ops.matmul_transposed(x.T, matrix, impl="pallas").T,
          expected_product(matrix, x))
