"""jsparse._gpu.tiled_gemv's launch configs, defaults, routing and argument checks: host-side
logic, run on the CPU (the kernel itself: tests/gpu/test_tiled_gemv.py, on a GPU)."""

import jax.numpy as jnp
import pytest

import jsparse
from jsparse._gpu import tiled_gemv

Config = tiled_gemv.TiledGemvConfig


@pytest.mark.parametrize("fields,message", [
    (dict(warps=0), "warps must be 1..32, got 0"),
    (dict(warps=33), "warps must be 1..32, got 33"),
    (dict(m_tiles=3, warps=16), "m_tiles must divide warps"),
    (dict(m_tiles=0), "m_tiles must divide warps"),
    (dict(k_splits=0), "k_splits must be 1..64, got 0"),
    (dict(k_splits=65), "k_splits must be 1..64, got 65"),
    (dict(x_source="bf16"), "x_source must be one of"),
])
def test_config_refuses_bad_fields_naming_them(fields, message):
  with pytest.raises(ValueError, match=message):
    Config(**fields)


def test_shared_bytes_follow_the_kernels_staging_layout():
  # 14336 columns = 224 K tiles; a tile: two 32-column words, 64 bytes of padding after a word
  # that fills a multiple of 128 bytes (XStage in csrc/cuda/tiled_gemv_ffi.cu).
  assert Config(x_source="float32").shared_bytes(1, 14336) == 224 * 2 * (128 + 64)
  assert Config(x_source="16-bit").shared_bytes(1, 14336) == 224 * 2 * 64
  assert Config(x_source="16-bit").shared_bytes(2, 14336) == 224 * 2 * (128 + 64)
  assert Config(x_source="float32").shared_bytes(3, 100) == 2 * 2 * (512 + 64)
  assert Config(x_source="global").shared_bytes(1, 14336) == 0
  assert Config(k_splits=2).shared_bytes(1, 14336) == Config().shared_bytes(1, 7168)
  with pytest.raises(ValueError, match="n must be 1..4"):
    Config().shared_bytes(5, 64)
  with pytest.raises(ValueError, match="k must be >= 1"):
    Config().shared_bytes(1, 0)


def test_fits_refuses_what_the_kernel_refuses():
  assert Config(x_source="global").fits(1, 64) and not Config(x_source="global").fits(2, 64)
  assert Config(warps=32).fits(1, 64) and not Config(warps=32).fits(2, 64)
  assert not Config(x_source="float32").fits(4, 14336)  # 258 KB of staging
  assert Config(x_source="float32", k_splits=2).fits(4, 14336)


def test_default_launches():
  wide, tall = (4096, 14336), (14336, 4096)
  assert tiled_gemv.default_config(1, *wide) == Config(1, 32, 1, "16-bit")
  # 896 row tiles: 8-warp blocks, eight an SM, one wave (16-warp blocks made 1.7).
  assert tiled_gemv.default_config(1, *tall) == Config(1, 8, 1, "16-bit")
  assert tiled_gemv.default_config(1, 8192, 4096) == Config(1, 16, 1, "16-bit")  # 512: 16 fit
  assert tiled_gemv.default_config(1, 20000, 4096).warps == 16  # 1250 > 8 x 132: no one wave
  # Eight blocks' staging of 14336 columns (28 KB each) do not fit an SM: 16 warps stay.
  assert tiled_gemv.default_config(1, 14336, 14336) == Config(1, 16, 1, "16-bit")
  # Fewer row tiles than SMs: K split so that every SM gets a block.
  assert tiled_gemv.default_config(1, 256, 4096) == Config(1, 32, 4, "16-bit")
  assert tiled_gemv.default_config(1, 1, 64).k_splits == 1  # one K tile: nothing to split
  assert tiled_gemv.default_config(2, *tall) == Config(4, 16, 1, "float32")
  assert tiled_gemv.default_config(4, *tall) == Config(4, 16, 1, "16-bit")
  assert tiled_gemv.default_config(2, *wide) == Config(1, 16, 1, "16-bit")
  for n in range(1, 5):
    for shape in (wide, tall, (40, 100), (1, 200000)):
      assert tiled_gemv.default_config(n, *shape).fits(n, shape[1])
  with pytest.raises(ValueError, match="n must be 1..4"):
    tiled_gemv.default_config(0, *wide)


def test_routes_by_columns_and_tile_fill():
  for n, fill in tiled_gemv.ROUTE_MAX_FILL.items():
    assert tiled_gemv.routes(n, fill) and not tiled_gemv.routes(n, fill + 1)
  assert not tiled_gemv.routes(3, 0.0) and not tiled_gemv.routes(8, 10.0)
  # Two columns on a weight whose launch groups row tiles (14336 rows) up to a higher fill.
  grouped = 16 * (tiled_gemv.MAX_BLOCKS + 1)
  assert tiled_gemv.routes(2, 410, grouped) and tiled_gemv.routes(2, 307, 14336)
  assert not tiled_gemv.routes(2, 307, grouped - 16) and not tiled_gemv.routes(2, 307, 4096)
  assert not tiled_gemv.routes(2, 411, 14336) and tiled_gemv.routes(2, 256, 4096)
  assert tiled_gemv.routes(1, 330, 14336) and not tiled_gemv.routes(1, 331, 14336)


def test_gemv_refuses_bad_arguments_naming_them():
  matrix = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  operands = (matrix.data, matrix.bitmaps, matrix.row_offsets)
  x = jnp.ones((128, 1), jnp.bfloat16)
  with pytest.raises(ValueError, match=r"x must be \[K, N\] with K = 128"):
    tiled_gemv.gemv(*operands, jnp.ones((64, 1), jnp.bfloat16), shape=matrix.shape)
  with pytest.raises(TypeError, match="bfloat16 or float16 alike"):
    tiled_gemv.gemv(*operands, x.astype(jnp.float16), shape=matrix.shape)
  with pytest.raises(ValueError, match="takes 1..4"):
    tiled_gemv.gemv(*operands, jnp.ones((128, 5), jnp.bfloat16), shape=matrix.shape)
  with pytest.raises(ValueError, match="take one column only, got 2"):
    tiled_gemv.gemv(*operands, jnp.ones((128, 2), jnp.bfloat16), shape=matrix.shape,
                    config=Config(warps=32))
  with pytest.raises(ValueError, match="raise k_splits"):
    staging_too_big()
  wrong_tiles = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16),
                                        tile_shape=(16, 32))
  with pytest.raises(ValueError, match="reads 16x64 tiles"):
    tiled_gemv.gemv(wrong_tiles.data, wrong_tiles.bitmaps, wrong_tiles.row_offsets, x,
                    shape=wrong_tiles.shape)


def staging_too_big():
  """A product whose x staging cannot fit: 4 columns of 14336 as float32 in one split."""
  shape = (16, 14336)
  matrix = jsparse.Tiled.fromdense(jnp.zeros(shape, jnp.bfloat16), tile_shape=(16, 64))
  tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets,
                  jnp.ones((shape[1], 4), jnp.bfloat16), shape=shape,
                  config=Config(x_source="float32"))


def test_gemv_refuses_operands_that_do_not_match_the_shape():
  matrix = jsparse.Tiled.fromdense(jnp.eye(32, 128, dtype=jnp.bfloat16), tile_shape=(16, 64))
  x = jnp.ones((128, 1), jnp.bfloat16)
  with pytest.raises(ValueError, match=r"bitmaps must be \[ceil\(M / 16\), ceil\(K / 64\), 16, 2\]"
                                       r" = \[2, 2, 16, 2\] for shape \(32, 128\)"):
    tiled_gemv.gemv(matrix.data, matrix.bitmaps[:1], matrix.row_offsets, x, shape=(32, 128))
  with pytest.raises(ValueError, match=r"row_offsets must be \[ceil\(M / 16\), ceil\(K / 64\), "
                                       r"16\] = \[2, 2, 16\]"):
    tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets[..., :8], x, shape=(32, 128))
  with pytest.raises(ValueError, match=r"data must be 1-D \[nse\]"):
    tiled_gemv.gemv(matrix.data[:, None], matrix.bitmaps, matrix.row_offsets, x,
                    shape=(32, 128))
  # A shape the bitmaps do not cover (more rows than their tiles hold):
  with pytest.raises(ValueError, match="bitmaps must be"):
    tiled_gemv.gemv(matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=(48, 128))


def test_cuda_tiled_kernel_routes_one_decision(monkeypatch):
  # jsparse.spmm and the benchmark take the CUDA tiled kernel from this one function; with the
  # libraries taken as available (no GPU here), its choice follows routes() and the operands.
  from jsparse._gpu import sparse_mma, structured
  monkeypatch.setattr(tiled_gemv, "available", lambda: True)
  monkeypatch.setattr(sparse_mma, "available", lambda: True)
  bf16 = jnp.bfloat16
  choose = structured.cuda_tiled_kernel
  assert choose((4096, 14336), (16, 64), bf16, bf16, 1, 307) == "tiled_gemv"
  assert choose((4096, 14336), (16, 64), bf16, bf16, 1, 512) == "tiled_mma"
  assert choose((4096, 14336), (16, 64), bf16, bf16, 2, 307) == "tiled_mma"
  assert choose((14336, 4096), (16, 64), bf16, bf16, 2, 307) == "tiled_gemv"
  assert choose((4096, 14336), (16, 64), bf16, bf16, 8, 10) == "tiled_mma"
  assert choose((4096, 14336), (16, 32), bf16, bf16, 1, 100) is None
  assert choose((4096, 14336), (16, 64), jnp.float32, jnp.float32, 1, 100) is None
  assert choose((4096, 14336), (16, 64), bf16, bf16, sparse_mma.MAX_N + 1, 100) is None
