"""pallas_kernels.tiled_spmm against a float64 NumPy product (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from pallas_kernels import _common, tiled_spmm
from tests.pallas_kernels import structured_cases as cases

SMALL = tiled_spmm.TiledSpmmConfig(block_n=16)
SPLIT = tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=2)
SCAN = tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=2, ranks="scan")
# Three splits of 2 K tiles (last split 1 tile: the pipelined loop's clamped loads).
PIPELINED = tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=3, pipelined=True)


def _run(matrix: jsparse.Tiled, b, config=SMALL):
  return tiled_spmm.kernel_fn(matrix.data, matrix.bitmaps, matrix.row_offsets, b,
                              shape=matrix.shape, config=config, interpret=cases.INTERPRET)


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.1, 0.3, 0.5]))
def test_ragged_unstructured(dtype, seed, density):
  # 40 x 100 is not a multiple of the 16 x 64 tiles; rows 3 and 20 empty; nse with padding;
  # split-K (one tile per split).
  rng = np.random.default_rng(seed)
  dense64 = cases.sparse_dense(rng, (40, 100), density, dtype)
  dense64[[3, 20]] = 0
  matrix = cases.tiled_matrix(dense64, dtype, (16, 64), nse=4000)
  b, b64 = cases.dense_operand(rng, (100, 8), dtype)
  cases.check_spmm(_run(matrix, b, SPLIT), dense64, b, b64, dtype)


@pytest.mark.parametrize("tile_shape", [(16, 64), (16, 32), (32, 128)], ids=str)
@pytest.mark.parametrize("splits,absent_reads", [(1, "zero"), (3, "masked"), (3, "neighbour")])
def test_pipelined(tile_shape, splits, absent_reads):
  # 40 x 330: 6 K tiles of 64 (3 of 128, 11 of 32), the last ragged; empty rows; one split
  # (prologue and loop over every tile) or three (two tiles each: the look-ahead loads clamp at
  # the split's end; with 128-column tiles one split runs a single tile).
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (40, 330), 0.3, jnp.bfloat16)
  dense64[[0, 17]] = 0
  matrix = cases.tiled_matrix(dense64, jnp.bfloat16, tile_shape, nse=5000)
  b, b64 = cases.dense_operand(rng, (330, 8), jnp.bfloat16)
  config = tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=splits, pipelined=True,
                                      absent_reads=absent_reads)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.bfloat16)


@pytest.mark.parametrize("absent_reads", ["masked", "neighbour"])
def test_absent_reads(absent_reads):
  # The last element of the last tile row absent: its "neighbour" position is one past the last
  # stored value (nse without padding) and is clamped (the interpreter would clamp it anyway; on
  # the GPU the read would leave the buffer).
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (48, 192), 0.4, jnp.float32)
  dense64[-1, -1] = 0
  dense64[:, 0] = rng.standard_normal(48)  # data[0] is a real value, not a zero
  matrix = cases.tiled_matrix(dense64, jnp.float32, (16, 64))
  b, b64 = cases.dense_operand(rng, (192, 8), jnp.float32)
  config = tiled_spmm.TiledSpmmConfig(block_n=16, absent_reads=absent_reads)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.float32)
  with pytest.raises(ValueError, match="absent_reads='far'"):
    tiled_spmm.TiledSpmmConfig(absent_reads="far")


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("pipelined,splits", [(False, 1), (True, 3)])
def test_fma_products(dtype, pipelined, splits):
  # N = 1 without a dot: ragged 40 x 330 (6 K tiles), empty rows, float32 sums per element.
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (40, 330), 0.3, dtype)
  dense64[[0, 17]] = 0
  matrix = cases.tiled_matrix(dense64, dtype, (16, 64), nse=5000)
  b, b64 = cases.dense_operand(rng, (330, 1 if pipelined else 3), dtype)  # 3: a column a program
  config = tiled_spmm.TiledSpmmConfig(block_n=1, num_splits=splits, pipelined=pipelined,
                                      absent_reads="masked", fma_products=True)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, dtype)
  assert tiled_spmm.gpu_supported((16, 64), config) is True
  with pytest.raises(ValueError, match="fma_products=True needs block_n=1"):
    tiled_spmm.TiledSpmmConfig(block_n=16, fma_products=True)


def test_pipelined_needs_popc_ranks():
  with pytest.raises(ValueError, match="pipelined=True needs ranks='popc'"):
    tiled_spmm.TiledSpmmConfig(ranks="scan", pipelined=True)


def test_popcount32_matches_numpy():
  # Edge words (0, all ones, top bit alone) and random words; Triton-safe shifts and adds.
  words = np.concatenate([np.array([0, 0xFFFFFFFF, 0x80000000, 1], np.uint32),
                          np.random.default_rng().integers(0, 2**32, 256, dtype=np.uint32)])
  expected = np.array([bin(int(w)).count("1") for w in words], np.int32)
  got = np.asarray(_common.popcount32(jnp.asarray(words)))
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_ranks_by_scan():
  # Ragged 40 x 300 in 16 x 64 tiles (two words a tile row, 5 K tiles), empty rows, padding,
  # split-K.
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (40, 300), 0.4, jnp.bfloat16)
  dense64[[3, 20]] = 0
  matrix = cases.tiled_matrix(dense64, jnp.bfloat16, (16, 64), nse=6000)
  b, b64 = cases.dense_operand(rng, (300, 8), jnp.bfloat16)
  cases.check_spmm(_run(matrix, b, SCAN), dense64, b, b64, jnp.bfloat16)


@pytest.mark.parametrize("shape,tile_shape,density,n", [
    pytest.param((16, 64), (16, 64), 0.0, 4, marks=pytest.mark.slow),  # nse = 0
    pytest.param((16, 64), (16, 64), 1.0, 1, marks=pytest.mark.slow),  # one full tile, N = 1
    pytest.param((50, 40), (32, 32), 0.2, 33,  # K not a multiple of tk, N one past two tiles
                 marks=pytest.mark.slow),
], ids=["nse0", "full-tile", "ragged-k"])
def test_edge_shapes(shape, tile_shape, density, n):
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, shape, density, jnp.float32)
  matrix = cases.tiled_matrix(dense64, jnp.float32, tile_shape)
  b, b64 = cases.dense_operand(rng, (shape[1], n), jnp.float32)
  cases.check_spmm(_run(matrix, b), dense64, b, b64, jnp.float32)
  reference = tiled_spmm.reference_fn(matrix.data, matrix.bitmaps, matrix.row_offsets, b,
                                      shape=matrix.shape)
  cases.check_spmm(reference, dense64, b, b64, jnp.float32)


def test_gpu_supported_names_the_tile():
  assert tiled_spmm.gpu_supported((16, 64), SMALL) is True
  assert "tm=8" in tiled_spmm.gpu_supported((8, 64), SMALL)
  assert "tk=96" in tiled_spmm.gpu_supported((16, 96), SMALL)


@pytest.mark.parametrize("config", [
    SPLIT, tiled_spmm.TiledSpmmConfig(block_n=256, num_warps=8, num_stages=2), SCAN, PIPELINED,
    tiled_spmm.TiledSpmmConfig(block_n=16, absent_reads="masked"),
    tiled_spmm.TiledSpmmConfig(block_n=16, absent_reads="neighbour"),
    tiled_spmm.TiledSpmmConfig(block_n=1, num_splits=2, pipelined=True, fma_products=True)],
    ids=["decode-split", "prefill", "scan", "pipelined", "masked", "neighbour", "fma"])
def test_lowers_to_triton_for_h100(monkeypatch, config):
  struct = jax.ShapeDtypeStruct
  cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda data, bitmaps, offsets, dense: tiled_spmm.kernel_fn(
          data, bitmaps, offsets, dense, shape=(256, 1024), config=config),
      struct((5000,), jnp.bfloat16), struct((16, 16, 16, 2), jnp.uint32),
      struct((16, 16, 16), jnp.int32), struct((1024, 8), jnp.bfloat16))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "tiled"),
                    reason="no pallas tiled kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_and_spmv_through_the_kernel():
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (32, 128), 0.3, jnp.bfloat16)
  matrix = cases.tiled_matrix(dense64, jnp.bfloat16, (16, 64))
  b, b64 = cases.dense_operand(rng, (128, 8), jnp.bfloat16)
  cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, jnp.bfloat16)
  cases.check_spmm(jsparse.spmv(matrix, b[:, 0], impl="pallas")[:, None], dense64, b[:, :1],
                   b64[:, :1], jnp.bfloat16)


def test_decoding_launch_by_weight_shape():
  # Wide weights (K > M) take the hand-pipelined loop with masked reads, tall ones the plain
  # loop reading absent elements beside the present ones. Prefill (N > 32) keeps the plain loop.
  from jsparse._gpu import structured
  from jsparse.formats.layout import SparseLayout

  def layout(shape):
    return SparseLayout(format="tiled", shape=shape, block_shape=(16, 64))
  wide = structured.tiled_config(layout((4096, 14336)), 16)
  tall = structured.tiled_config(layout((14336, 4096)), 16)
  prefill = structured.tiled_config(layout((4096, 14336)), 1024)
  assert (wide.pipelined, wide.absent_reads) == (True, "masked")
  assert (tall.pipelined, tall.absent_reads) == (False, "neighbour")
  assert (prefill.pipelined, prefill.absent_reads) == (False, "zero")
  # N = 1: FMA products on wide weights only.
  wide_one = structured.tiled_config(layout((4096, 14336)), 1)
  tall_one = structured.tiled_config(layout((14336, 4096)), 1)
  assert (wide_one.fma_products, wide_one.block_n, wide_one.pipelined) == (True, 1, True)
  assert (tall_one.fma_products, tall_one.block_n) == (False, 16)
  assert structured._tiled_supported(layout((4096, 14336)), 1) is True


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape,tile_shape,density", [
    ((40, 100), (16, 64), 0.3),  # not a multiple of the tiles; rows 3 and 20 empty; padding
    ((16, 64), (16, 32), 0.0),  # nse = 0
    ((33, 64), (32, 32), 1.0),  # full tiles, one row past them
], ids=["ragged", "nse0", "full"])
def test_expand_fn_is_the_dense_matrix(dtype, shape, tile_shape, density):
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, shape, density, dtype)
  dense64[[3 % shape[0], 20 % shape[0]]] = 0
  nse = None if density == 0 else int(np.count_nonzero(dense64)) + 7  # padding after the values
  matrix = cases.tiled_matrix(dense64, dtype, tile_shape, nse=nse)
  expanded = tiled_spmm.expand_fn(matrix.data, matrix.bitmaps, matrix.row_offsets,
                                  shape=matrix.shape, interpret=cases.INTERPRET)
  assert expanded.shape == shape and expanded.dtype == jnp.dtype(dtype)
  np.testing.assert_array_equal(np.asarray(expanded, np.float64),
                                np.asarray(jnp.asarray(dense64, dtype), np.float64))


def test_expand_fn_lowers_to_triton_for_h100(monkeypatch):
  struct = jax.ShapeDtypeStruct
  cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda data, bitmaps, offsets: tiled_spmm.expand_fn(
          data, bitmaps, offsets, shape=(256, 1000)),
      struct((5000,), jnp.bfloat16), struct((16, 16, 16, 2), jnp.uint32),
      struct((16, 16, 16), jnp.int32))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "tiled"),
                    reason="no pallas tiled kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_prefill_expands_to_dense(monkeypatch):
  # From EXPAND_MIN_N columns up, W is expanded once and multiplied by XLA's product.
  calls = cases.record_prefill_calls(monkeypatch, tiled_spmm, 40)
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (40, 100), 0.3, jnp.bfloat16)
  matrix = cases.tiled_matrix(dense64, jnp.bfloat16, (16, 64))
  for num_n in (40, 16):
    b, b64 = cases.dense_operand(rng, (100, num_n), jnp.bfloat16)
    cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, jnp.bfloat16)
  assert calls == ["expand_fn", "kernel_fn"]


def test_expand_fn_rejects_bad_arguments():
  matrix = cases.tiled_matrix(np.ones((16, 64)), jnp.bfloat16, (16, 64))
  data, bitmaps, offsets = matrix.data, matrix.bitmaps, matrix.row_offsets
  expand = lambda *a, **k: tiled_spmm.expand_fn(*a, **{"shape": (16, 64), "interpret": True, **k})  # noqa: E731
  with pytest.raises(TypeError, match="data must be float16, bfloat16 or float32"):
    expand(data.astype(jnp.int32), bitmaps, offsets)
  with pytest.raises(ValueError, match=r"data must be 1-D \[nse\]"):
    expand(data[None], bitmaps, offsets)
  with pytest.raises(ValueError, match=r"bitmaps must be uint32 \[Mt, Kt, tm, tk / 32\]"):
    expand(data, bitmaps.astype(jnp.int32), offsets)
  with pytest.raises(ValueError, match=r"row_offsets must be integers \[Mt, Kt, tm\]"):
    expand(data, bitmaps, offsets[..., :8])
  with pytest.raises(ValueError, match=r"shape \(17, 64\) must lie within the tiles' \(16, 64\)"):
    expand(data, bitmaps, offsets, shape=(17, 64))


@pytest.mark.parametrize("tile_shape,num_n,supported", [
    ((8, 64), 64, True), ((8, 64), 16, False), ((16, 96), 64, False), ((16, 96), 16, False)])
def test_cuda_support_is_checked_per_path(tile_shape, num_n, supported):
  # Prefill needs expand_fn's constraints (tile sides powers of two, no dot), decoding the fused
  # kernel's (powers of two >= 16 for its dot).
  from jsparse.formats.layout import SparseLayout
  from jsparse.ops import registry
  struct = jax.ShapeDtypeStruct
  tm, tk = tile_shape
  grid = (-(-64 // tm), -(-192 // tk))
  avals = [struct((500,), jnp.bfloat16), struct((500,), jnp.int32),
           struct((*grid, tm, tk // 32), jnp.uint32), struct((*grid, tm), jnp.int32),
           struct((192, num_n), jnp.bfloat16)]
  params = {"layout": SparseLayout("tiled", (64, 192), block_shape=tile_shape),
            "transpose": False, "impl": "auto"}
  kernel = registry.select_kernel("spmm", "tiled", "cuda", "auto", avals, params)
  assert (kernel is not None and kernel.impl == "pallas") == supported
  if tk == 96:
    assert "tk=96 must be a power of two" in tiled_spmm.expand_supported(tile_shape)
  else:
    assert tiled_spmm.expand_supported(tile_shape) is True
