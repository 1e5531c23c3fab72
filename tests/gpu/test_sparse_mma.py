"""jsparse._gpu.sparse_mma: the mma.sp decoding kernel against float64, on a CUDA GPU (built
with nvcc on first use). Skipped where JAX sees no GPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import sparse_mma

from tests.formats.test_mma_nm import random_nm

pytestmark = pytest.mark.gpu

# Ragged: M not a multiple of 16 (and 1), K not of 64 (and of 8), one group.
SHAPES = [(16, 64), (40, 100), (1, 64), (33, 4), (300, 1000), (256, 4096)]
COLUMNS = [1, 3, 8, 9, 16, 17, 32]


def float64_product(matrix, x):
  return np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)


def check(out, expected):
  scale = max(np.abs(expected).max(), 1.0)
  assert np.isfinite(np.asarray(out, np.float64)).all()
  np.testing.assert_allclose(np.asarray(out, np.float64), expected, atol=2e-2 * scale, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_public_op_both_layouts(shape, dtype):
  matrix = random_nm(sum(shape), shape, dtype)
  packed = jsparse.MmaNM.from_nm(matrix)
  for n in COLUMNS:
    x = jnp.asarray(np.random.default_rng(n).standard_normal((shape[1], n)), dtype)
    expected = float64_product(matrix, x)
    out = jsparse.spmm(packed, x, impl="mma")
    assert out.shape == (shape[0], n) and out.dtype == jnp.dtype(dtype)
    check(out, expected)
    check(jsparse.ops.matmul_transposed(x.T, packed, impl="mma").T, expected)


@pytest.mark.parametrize("config", [sparse_mma.SparseMmaConfig(1, 8, False),
                                    sparse_mma.SparseMmaConfig(2, 8, True),
                                    sparse_mma.SparseMmaConfig(1, 3, None),
                                    sparse_mma.SparseMmaConfig(2, 1, None)])
def test_launches(config):
  shape = (72, 520)  # K % 8 == 0: tokens-major staging; 520 = 8 pairs + a partial one
  matrix = random_nm(11, shape, jnp.bfloat16)
  packed = jsparse.MmaNM.from_nm(matrix)
  for n in (1, 8, 16, 24, 32):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((shape[1], n)), jnp.bfloat16)
    expected = float64_product(matrix, x)
    check(sparse_mma.matmul(packed, x.T, tokens_major=True, config=config).T, expected)
    if config.staged is not True or n % 8 == 0:
      check(sparse_mma.matmul(packed, x, config=config), expected)


def test_staging_refuses_unaligned_rows():
  packed = jsparse.MmaNM.from_nm(random_nm(12, (16, 100), jnp.bfloat16))
  with pytest.raises(Exception, match="staged launches need K % 8 == 0"):
    jax.block_until_ready(sparse_mma.matmul(packed, jnp.ones((4, 100), jnp.bfloat16),
                                            tokens_major=True,
                                            config=sparse_mma.SparseMmaConfig(staged=True)))


def test_jit_vmap_and_zero_matrix():
  matrix = random_nm(13, (64, 256), jnp.bfloat16)
  packed = jsparse.MmaNM.from_nm(matrix)
  xs = jnp.asarray(np.random.default_rng(0).standard_normal((3, 256, 8)), jnp.bfloat16)
  out = jax.jit(jax.vmap(lambda x: jsparse.spmm(packed, x, impl="mma")))(xs)
  for i in range(3):
    check(out[i], float64_product(matrix, xs[i]))
  zero = jsparse.MmaNM.from_nm(jsparse.NM.fromdense(jnp.zeros((32, 128), jnp.bfloat16)))
  out = jsparse.spmm(zero, jnp.ones((128, 8), jnp.bfloat16), impl="mma")
  assert not np.asarray(out, np.float32).any()


def random_tiled(seed, shape, density, dtype):
  """A jsparse.Tiled (16x64 tiles) of random values at ``density``, a few rows empty."""
  rng = np.random.default_rng(seed)
  w = rng.standard_normal(shape).astype(np.float32) * (rng.random(shape) < density)
  if shape[0] > 2:
    w[1] = 0.0
  return jsparse.Tiled.fromdense(jnp.asarray(w, dtype), tile_shape=(16, 64))


# K = 64 with 8 warps: warps without tiles; 40x100: K % 8 != 0 (x padded, never tokens-major).
@pytest.mark.parametrize("shape,density,dtype", [
    ((16, 64), 0.3, jnp.bfloat16), ((40, 100), 0.3, jnp.float16), ((1, 64), 1.0, jnp.bfloat16),
    ((33, 4), 0.5, jnp.bfloat16), ((300, 1000), 0.05, jnp.bfloat16),
    ((256, 4096), 0.3, jnp.bfloat16), ((130, 640), 1.0, jnp.float16)])
def test_tiled_kernel_through_the_public_op(shape, density, dtype):
  from jsparse._gpu import structured  # noqa: F401 - registers the lowering that routes here
  matrix = random_tiled(sum(shape), shape, density, dtype)
  assert sparse_mma.tiled_applies(shape, matrix.tile_shape, dtype, dtype, 8)
  for n in (1, 3, 16, 32):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((shape[1], n)), dtype)
    expected = np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)
    check(jsparse.spmm(matrix, x, impl="pallas"), expected)
    check(sparse_mma.tiled_matmul(matrix.data, matrix.bitmaps, matrix.row_offsets, x,
                                  shape=shape, config=sparse_mma.TiledMmaConfig(2, 3, 2)),
          expected)
    check(jsparse.ops.matmul_transposed(x.T, matrix, impl="pallas").T, expected)


@pytest.mark.parametrize("config", [sparse_mma.TiledMmaConfig(1, 8, 1),
                                    sparse_mma.TiledMmaConfig(1, 1, 4),
                                    sparse_mma.TiledMmaConfig(2, 1, 3),
                                    sparse_mma.TiledMmaConfig(2, 4, 2),
                                    sparse_mma.TiledMmaConfig(2, 16, 1),
                                    # every tile past the slot (read from global memory):
                                    sparse_mma.TiledMmaConfig(4, 8, 2, capacity=8),
                                    # about half the tiles past it (mean 205 values):
                                    sparse_mma.TiledMmaConfig(4, 4, 1, capacity=208),
                                    # four row tiles (3 here: one past the last), K split:
                                    sparse_mma.TiledMmaConfig(4, 8, 2, capacity=208, k_splits=3),
                                    sparse_mma.TiledMmaConfig(4, 2, 1, k_splits=2),
                                    sparse_mma.TiledMmaConfig(1, 8, 2, k_splits=16)])
def test_tiled_launches(config):
  # 3 row tiles (odd, for two a block); 70 K tiles: one warp walks its tiles in three rounds.
  shape = (40, 64 * 70)
  matrix = random_tiled(7, shape, 0.2, jnp.bfloat16)
  for n in (1, 8, 16, 32):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((shape[1], n)), jnp.bfloat16)
    expected = np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)
    check(sparse_mma.tiled_matmul(matrix.data, matrix.bitmaps, matrix.row_offsets, x,
                                  shape=shape, config=config), expected)


# Groups of warps sharing x's staging: 3 row tiles against blocks of 2-8 (warps past the last
# row tile), 70 K tiles over 2-8 groups, K splits; 19 row tiles with K % 64 != 0 in float16.
@pytest.mark.parametrize("config", [sparse_mma.TiledMmaConfig(2, 16, 2, x_sharing=4),
                                    sparse_mma.TiledMmaConfig(1, 8, 3, x_sharing=2),
                                    sparse_mma.TiledMmaConfig(1, 16, 2, x_sharing=4),
                                    sparse_mma.TiledMmaConfig(2, 8, 3, x_sharing=2),
                                    sparse_mma.TiledMmaConfig(2, 4, 2, k_splits=3, x_sharing=4)])
@pytest.mark.parametrize("shape,dtype", [((40, 64 * 70), jnp.bfloat16),
                                         ((300, 1000), jnp.float16)])
def test_tiled_shared_x_launches(config, shape, dtype):
  matrix = random_tiled(sum(shape), shape, 0.2, dtype)
  for n in (3, 8, 16, 32):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((shape[1], n)), dtype)
    expected = np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)
    check(sparse_mma.tiled_matmul(matrix.data, matrix.bitmaps, matrix.row_offsets, x,
                                  shape=shape, config=config), expected)


# tiled_matmul hands x over tokens-major ([N, K]) only at N = 1; the handler takes any N, so
# the kernel's tokens-major staging of 2-32 columns is checked through the FFI target itself.
@pytest.mark.parametrize("config", [sparse_mma.TiledMmaConfig(1, 16, 2),
                                    sparse_mma.TiledMmaConfig(2, 3, 2),
                                    sparse_mma.TiledMmaConfig(4, 8, 1, capacity=208)])
def test_tiled_tokens_major_columns(config):
  shape = (40, 64 * 70)
  matrix = random_tiled(11, shape, 0.2, jnp.bfloat16)
  sparse_mma.load()
  for n in (2, 8, 13, 16, 32):
    x = jnp.asarray(np.random.default_rng(n).standard_normal((n, shape[1])), jnp.bfloat16)
    out = jax.ffi.ffi_call(sparse_mma.TILED_TARGET,
                           jax.ShapeDtypeStruct((n, shape[0]), jnp.bfloat16))(
        matrix.data, matrix.bitmaps, matrix.row_offsets.astype(jnp.int32), x,
        m=np.int64(shape[0]), k=np.int64(shape[1]), tokens_major=np.int64(1),
        m_tiles=np.int64(config.m_tiles), warps=np.int64(config.warps),
        stages=np.int64(config.stages), capacity=np.int64(config.capacity),
        k_splits=np.int64(1), x_sharing=np.int64(1))
    check(out.T, float64_product(matrix, x.T))


def test_tiled_handler_refuses_bad_sharing():
  # The FFI handler checks what TiledMmaConfig checks in Python, for direct calls of the target.
  shape = (32, 128)
  matrix = random_tiled(5, shape, 0.3, jnp.bfloat16)
  sparse_mma.load()

  def call(x, tokens_major, x_sharing, warps=8):
    n = x.shape[0] if tokens_major else x.shape[1]
    out_shape = (n, shape[0]) if tokens_major else (shape[0], n)
    return jax.block_until_ready(jax.ffi.ffi_call(
        sparse_mma.TILED_TARGET, jax.ShapeDtypeStruct(out_shape, jnp.bfloat16))(
        matrix.data, matrix.bitmaps, matrix.row_offsets.astype(jnp.int32), x,
        m=np.int64(shape[0]), k=np.int64(shape[1]), tokens_major=np.int64(tokens_major),
        m_tiles=np.int64(1), warps=np.int64(warps), stages=np.int64(2),
        capacity=np.int64(1024), k_splits=np.int64(1), x_sharing=np.int64(x_sharing)))

  x = jnp.ones((shape[1], 8), jnp.bfloat16)
  with pytest.raises(Exception, match="x_sharing must be 1, 2 or 4, got 3"):
    call(x, False, 3)
  with pytest.raises(Exception, match="x_sharing > 1 needs x \\[K, N\\]"):
    call(x.T, True, 2)
  with pytest.raises(Exception, match="x_sharing > 1 needs x \\[K, N\\]"):
    call(x, False, 4, warps=6)


def test_tiled_kernel_zero_matrix():
  matrix = jsparse.Tiled.fromdense(jnp.zeros((48, 256), jnp.bfloat16), tile_shape=(16, 64))
  out = sparse_mma.tiled_matmul(matrix.data, matrix.bitmaps, matrix.row_offsets,
                                jnp.ones((256, 8), jnp.bfloat16), shape=(48, 256))
  assert out.shape == (48, 8) and not np.asarray(out, np.float32).any()
