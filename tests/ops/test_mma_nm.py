"""jsparse.spmm on an MmaNM: which calls go to the mma.sp kernel, and the dense path's results
against float64 (the kernel itself: tests/gpu/test_sparse_mma.py)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import sparse_mma
from jsparse.ops import mma_nm

from tests.formats.test_mma_nm import random_nm


def float64_product(matrix, b, transpose_a=False):
  dense = np.asarray(matrix.todense(), np.float64)
  return (dense.T if transpose_a else dense) @ np.asarray(b, np.float64)


@pytest.mark.parametrize("shape,n", [((40, 100), 3), ((16, 64), 1), ((1, 64), 17)])
@pytest.mark.parametrize("transpose_a", [False, True])
def test_dense_path_matches_float64(shape, n, transpose_a):
  matrix = random_nm(5, shape, jnp.bfloat16)
  packed = jsparse.MmaNM.from_nm(matrix)
  rows = shape[0] if transpose_a else shape[1]
  b = jnp.asarray(np.random.default_rng(n).standard_normal((rows, n)), jnp.bfloat16)
  out = jax.jit(lambda a, b: jsparse.spmm(a, b, transpose_a=transpose_a))(packed, b)
  assert out.dtype == jnp.bfloat16 and out.shape == (shape[1] if transpose_a else shape[0], n)
  np.testing.assert_allclose(np.asarray(out, np.float64),
                             float64_product(matrix, b, transpose_a), rtol=2e-2, atol=2e-2)


def test_promoted_dtype_vmap_and_layer_product():
  matrix = random_nm(6, (24, 32), jnp.float16)
  packed = jsparse.MmaNM.from_nm(matrix)
  b = jnp.asarray(np.random.default_rng(0).standard_normal((3, 32, 5)), jnp.float32)
  out = jax.vmap(lambda b: packed @ b)(b)
  assert out.dtype == jnp.float32
  for i in range(3):
    np.testing.assert_allclose(np.asarray(out[i]), float64_product(matrix, b[i]), rtol=1e-5,
                               atol=1e-5)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3, 32)), jnp.float16)
  y = jsparse.ops.matmul_transposed(x, packed)
  assert y.shape == (2, 3, 24)
  np.testing.assert_allclose(np.asarray(y, np.float64),
                             np.asarray(x, np.float64) @ np.asarray(matrix.todense(),
                                                                    np.float64).T,
                             rtol=1e-2, atol=1e-2)


class KernelMarker:
  """Stands in for the CUDA kernel: records each call and computes it densely."""

  def __init__(self):
    self.calls = []

  def __call__(self, a, x, *, tokens_major=False, config=None):
    self.calls.append((tuple(x.shape), tokens_major))
    dense = a.todense().astype(jnp.float32)
    if tokens_major:
      return (x.astype(jnp.float32) @ dense.T).astype(x.dtype)
    return (dense @ x.astype(jnp.float32)).astype(x.dtype)


@pytest.fixture
def kernel(monkeypatch):
  marker = KernelMarker()
  monkeypatch.setattr(sparse_mma, "available", lambda: True)
  monkeypatch.setattr(sparse_mma, "matmul", marker)
  return marker


def test_routing_to_the_kernel(kernel):
  matrix = random_nm(7, (48, 128), jnp.bfloat16)
  packed = jsparse.MmaNM.from_nm(matrix)
  for n, expected_call in ((1, ((1, 128), True)), (3, ((128, 8), False)),
                           (16, ((128, 16), False)), (20, ((128, 24), False))):
    b = jnp.asarray(np.random.default_rng(n).standard_normal((128, n)), jnp.bfloat16)
    out = jsparse.spmm(packed, b)
    assert kernel.calls[-1] == expected_call and out.shape == (48, n)
    np.testing.assert_allclose(np.asarray(out, np.float64), float64_product(matrix, b),
                               rtol=2e-2, atol=2e-2)
  x = jnp.ones((2, 4, 128), jnp.bfloat16)
  assert jsparse.ops.matmul_transposed(x, packed).shape == (2, 4, 48)
  assert kernel.calls[-1] == ((8, 128), True)
  count = len(kernel.calls)
  jsparse.spmm(packed, jnp.ones((128, 33), jnp.bfloat16))  # more columns than the kernel takes
  jsparse.spmm(packed, jnp.ones((128, 4), jnp.float32))  # another dtype
  jsparse.spmm(packed, jnp.ones((48, 4), jnp.bfloat16), transpose_a=True)
  jsparse.spmm(packed, jnp.ones((128, 4), jnp.bfloat16), impl="reference")
  assert len(kernel.calls) == count


def test_forcing_the_kernel_says_why_it_cannot(kernel):
  packed = jsparse.MmaNM.from_nm(random_nm(8, (16, 64), jnp.bfloat16))
  with pytest.raises(ValueError, match="B has 40 columns"):
    jsparse.spmm(packed, jnp.ones((64, 40), jnp.bfloat16), impl="mma")
  with pytest.raises(ValueError, match="B's dtype float32 differs"):
    jsparse.spmm(packed, jnp.ones((64, 4), jnp.float32), impl="mma")
  with pytest.raises(ValueError, match="transpose_a"):
    jsparse.spmm(packed, jnp.ones((16, 4), jnp.bfloat16), transpose_a=True, impl="mma")


def test_without_a_gpu_auto_uses_the_dense_path_and_mma_is_refused():
  packed = jsparse.MmaNM.from_nm(random_nm(9, (16, 64), jnp.bfloat16))
  if sparse_mma.available() is True:
    pytest.skip("a GPU with the kernel is present")
  assert mma_nm.route(packed, 8, jnp.bfloat16, transpose_a=False, impl="auto") == "reference"
  with pytest.raises(ValueError, match="the kernel is not available"):
    jsparse.spmm(packed, jnp.ones((64, 8), jnp.bfloat16), impl="mma")


def test_bad_arguments_name_themselves():
  packed = jsparse.MmaNM.from_nm(random_nm(10, (16, 64), jnp.bfloat16))
  with pytest.raises(ValueError, match="impl must be one of"):
    jsparse.spmm(packed, jnp.ones((64, 8), jnp.bfloat16), impl="pallas")
  with pytest.raises(ValueError, match=r"B.shape\[0\] = 63 must equal A.shape\[1\] = 64"):
    jsparse.spmm(packed, jnp.ones((63, 8), jnp.bfloat16))
  with pytest.raises(ValueError, match="B must be 2-D"):
    jsparse.spmm(packed, jnp.ones((64,), jnp.bfloat16))
  with pytest.raises(ValueError, match=r"x must be \[..., K\] with K = A.shape\[1\] = 64"):
    jsparse.ops.matmul_transposed(jnp.ones((2, 60), jnp.bfloat16), packed)
  with pytest.raises(TypeError, match="x must have A's dtype"):
    sparse_mma.matmul(packed, jnp.ones((64, 8), jnp.float32))
  with pytest.raises(ValueError, match="the mma.sp kernel takes 1..32"):
    sparse_mma.matmul(packed, jnp.ones((64, 33), jnp.bfloat16))
  with pytest.raises(TypeError, match="a must be a jsparse.MmaNM"):
    sparse_mma.matmul(jnp.ones((16, 64), jnp.bfloat16), jnp.ones((64, 8), jnp.bfloat16))
  with pytest.raises(ValueError, match="x must be 2-D"):
    sparse_mma.matmul(packed, jnp.ones((64,), jnp.bfloat16))
  with pytest.raises(ValueError, match="x's contraction size 60 does not match A's K = 64"):
    sparse_mma.matmul(packed, jnp.ones((60, 8), jnp.bfloat16))
  with pytest.raises(ValueError, match="m_tiles must be 1 or 2"):
    sparse_mma.SparseMmaConfig(m_tiles=3)
  with pytest.raises(ValueError, match="warps must be 1..8"):
    sparse_mma.SparseMmaConfig(warps=9)


def test_tiled_kernel_refuses_bad_arguments_naming_them():
  tiled = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  arrays = (tiled.data, tiled.bitmaps, tiled.row_offsets)
  with pytest.raises(ValueError, match=r"x must be \[K, N\] with K = 128, got shape \(64, 8\)"):
    sparse_mma.tiled_matmul(*arrays, jnp.ones((64, 8), jnp.bfloat16), shape=(32, 128))
  with pytest.raises(TypeError, match="data and x must be bfloat16 or float16 alike"):
    sparse_mma.tiled_matmul(*arrays, jnp.ones((128, 8), jnp.float32), shape=(32, 128))
  with pytest.raises(ValueError, match="x has 33 columns; the tiled kernel takes 1..32"):
    sparse_mma.tiled_matmul(*arrays, jnp.ones((128, 33), jnp.bfloat16), shape=(32, 128))
  wide = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 128))
  with pytest.raises(ValueError, match="the tiled kernel reads 16x64 tiles"):
    sparse_mma.tiled_matmul(wide.data, wide.bitmaps, wide.row_offsets,
                            jnp.ones((128, 8), jnp.bfloat16), shape=(32, 128))
  assert not sparse_mma.tiled_applies((32, 128), (16, 128), jnp.bfloat16, jnp.bfloat16, 8)


def test_tiled_launch_configs_are_checked():
  with pytest.raises(ValueError, match="stages must be 1..4"):
    sparse_mma.TiledMmaConfig(stages=5)
  with pytest.raises(ValueError, match="m_tiles must be 1, 2 or 4, got 3"):
    sparse_mma.TiledMmaConfig(m_tiles=3)
  with pytest.raises(ValueError, match=r"m_tiles = 4 takes at most 8 warps \(its registers\)"):
    sparse_mma.TiledMmaConfig(m_tiles=4, warps=16)
  with pytest.raises(ValueError, match="k_splits must be 1..16, got 0"):
    sparse_mma.TiledMmaConfig(k_splits=0)
  with pytest.raises(ValueError, match="warps must be 1..16"):
    sparse_mma.TiledMmaConfig(warps=0)
  for capacity in (0, 12, 1032):
    with pytest.raises(ValueError, match=f"capacity must be a multiple of 8 in 8..1024, "
                                         f"got {capacity}"):
      sparse_mma.TiledMmaConfig(capacity=capacity)
  # A slot's values are the capacity plus 8 (the copy's aligned start): smaller slots, less
  # shared memory, by exactly the values left out.
  full, small = sparse_mma.TiledMmaConfig(4, 8, 2), sparse_mma.TiledMmaConfig(4, 8, 2, 384)
  # 8 warps x 2 stages x 4 row tiles x 640 values x 2 bytes
  assert full.shared_bytes(16, False) - small.shared_bytes(16, False) == 8 * 2 * 4 * 640 * 2
  with pytest.raises(ValueError, match="a capacity below 1024 needs m_tiles = 4"):
    sparse_mma.TiledMmaConfig(2, 8, 2, 384)
  # Tokens-major x stages a 72-element row for each of the N columns that exist (at most 8 a
  # column tile): one at N = 1, where [K, N] x stages 64 rows of 8.
  one = sparse_mma.TiledMmaConfig(1, 16, 2)
  assert one.shared_bytes(1, True) == 16 * 2 * (72 + 64 + 1024 + 8) * 2
  assert one.shared_bytes(8, True) == 16 * 2 * (8 * 72 + 64 + 1024 + 8) * 2
  assert one.shared_bytes(8, False) == 16 * 2 * (64 * 8 + 64 + 1024 + 8) * 2
  # x shared by groups of x_sharing warps: one x ring a group, W's slots a warp as before.
  shared = sparse_mma.TiledMmaConfig(2, 16, 2, x_sharing=4)
  assert shared.shared_bytes(32, False) == 2 * (4 * 64 * 40 + 16 * 2 * (64 + 1024 + 8)) * 2
  assert (sparse_mma.TiledMmaConfig(2, 16, 2).shared_bytes(32, False)
          - shared.shared_bytes(32, False) == 2 * 12 * 64 * 40 * 2)
  with pytest.raises(ValueError, match="x_sharing must be 1, 2 or 4, got 3"):
    sparse_mma.TiledMmaConfig(x_sharing=3)
  for bad in (dict(m_tiles=4, warps=8, stages=2), dict(warps=6, stages=2),
              dict(warps=8, stages=1), dict(warps=8, stages=4)):
    with pytest.raises(ValueError, match="x_sharing = 4 needs m_tiles 1 or 2, stages 2 or 3"):
      sparse_mma.TiledMmaConfig(x_sharing=4, **bad)
  pair = sparse_mma.TiledMmaConfig(1, 8, 2, x_sharing=2)
  assert not pair.stages_x(1, 128) and pair.stages_x(1, 100) and pair.stages_x(8, 128)
  assert sparse_mma.TiledMmaConfig(1, 8, 2).stages_x(1, 128)
  tiled = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  with pytest.raises(ValueError, match="use x_sharing = 1 for N = 1"):
    sparse_mma.tiled_matmul(tiled.data, tiled.bitmaps, tiled.row_offsets,
                            jnp.ones((128, 1), jnp.bfloat16), shape=(32, 128),
                            config=sparse_mma.TiledMmaConfig(1, 8, 2, x_sharing=2))
  for n in (0, 33):
    with pytest.raises(ValueError, match=f"n must be 1..32 \\(the tiled kernel's columns\\), "
                                         f"got {n}"):
      one.fits(n, 4096)
  # Every default launch fits a block's shared memory; four stages of two row tiles at 32
  # columns do not, and the call says so before it reaches the GPU.
  for n in range(1, sparse_mma.MAX_N + 1):
    for m in (None, 16, 14336):
      config = sparse_mma.default_tiled_config(n, m)
      assert config.fits(n, 4096) and config.fits(n, 100)
      assert config.shared_bytes(n, False) <= sparse_mma.MAX_SHARED_BYTES
      assert config.shared_bytes(n, True) <= sparse_mma.MAX_SHARED_BYTES
  tiled = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  with pytest.raises(ValueError, match="bytes of shared memory at N = 32"):
    sparse_mma.tiled_matmul(tiled.data, tiled.bitmaps, tiled.row_offsets,
                            jnp.ones((128, 32), jnp.bfloat16), shape=(32, 128),
                            config=sparse_mma.TiledMmaConfig(2, 8, 4))


def test_tile_capacity_covers_uniform_tiles():
  # Mean plus six standard deviations plus 8, rounded up to 8; a full or empty tile is exact.
  assert sparse_mma.tile_capacity(1024) == 1024
  assert sparse_mma.tile_capacity(0) == 8
  assert sparse_mma.tile_capacity(1024 * 0.3) == 408  # 307.2 + 6 * 14.66 + 8 = 403.2
  rng = np.random.default_rng(0)
  for density in (0.1, 0.3, 0.5, 0.7):
    counts = (rng.random((20000, 1024)) < density).sum(axis=1)
    assert counts.max() <= sparse_mma.tile_capacity(1024 * density) - 8
  with pytest.raises(ValueError, match="mean_values must be in 0..1024, got 1025"):
    sparse_mma.tile_capacity(1025)


def test_mean_tile_fill_reads_the_shapes():
  tiled = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  # 32 values over 2 x 2 tiles.
  assert sparse_mma.mean_tile_fill(tiled.data, tiled.bitmaps) == 32 / 4
  with pytest.raises(ValueError, match=r"bitmaps \[Mt, Kt, tm, words\], got shapes"):
    sparse_mma.mean_tile_fill(tiled.data, tiled.bitmaps[0])


def test_tiled_default_launch_follows_the_shape():
  assert sparse_mma.default_tiled_config(1, 14336) == sparse_mma.TiledMmaConfig(1, 16, 2)
  assert sparse_mma.default_tiled_config(8, 4096) == sparse_mma.TiledMmaConfig(1, 16, 2)
  # 2-8 columns of tiles holding SHARE_X_MIN_FILL values or more: pairs of warps share x.
  fill = sparse_mma.SHARE_X_MIN_FILL
  assert (sparse_mma.default_tiled_config(8, 4096, 14336, fill)
          == sparse_mma.TiledMmaConfig(1, 16, 2, x_sharing=2))
  assert sparse_mma.default_tiled_config(2, None, None, 1024).x_sharing == 2
  assert sparse_mma.default_tiled_config(8, 4096, 14336, fill - 1).x_sharing == 1
  assert sparse_mma.default_tiled_config(1, 4096, 14336, 1024).x_sharing == 1
  with pytest.raises(ValueError, match="tile_fill must be in 0..1024"):
    sparse_mma.default_tiled_config(8, 4096, 14336, -1.0)
  # From 9 columns groups of four warps share x; blocks of 128 rows, K split to fill 132 SMs:
  # 4096 rows make 32 blocks (four splits), 14336 rows 112 (one).
  shared = sparse_mma.TiledMmaConfig(2, 16, 2, x_sharing=4)
  assert sparse_mma.default_tiled_config(9) == shared
  assert sparse_mma.default_tiled_config(16, 4096, 14336) == dataclasses.replace(shared, k_splits=4)
  assert sparse_mma.default_tiled_config(32, 4096) == dataclasses.replace(shared, k_splits=4)
  assert sparse_mma.default_tiled_config(32, 14336, 4096) == shared
  # A few rows: at most 16 splits, each of at least 16 K tiles where K is known.
  assert sparse_mma.default_tiled_config(16, 16).k_splits == 16
  assert sparse_mma.default_tiled_config(16, 16, 64 * 64).k_splits == 4
  assert sparse_mma.default_tiled_config(16, 16, 100).k_splits == 1
  for n in (0, sparse_mma.MAX_N + 1):
    with pytest.raises(ValueError, match=r"n must be 1..32 \(the tiled kernel's columns\)"):
      sparse_mma.default_tiled_config(n)
