"""pallas_kernels.tiled_gather against a float64 NumPy product (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from pallas_kernels import tiled_gather
from tests.pallas_kernels import structured_cases as cases

Config = tiled_gather.TiledGatherConfig


def _run(matrix: jsparse.Tiled, b, config):
  return tiled_gather.kernel_fn(matrix.data, matrix.value_columns, matrix.bitmaps,
                                matrix.row_offsets, b, shape=matrix.shape, config=config,
                                interpret=cases.INTERPRET)


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.1, 0.5, 0.9]))
def test_ragged_unstructured_one_column(dtype, seed, density):
  # 40 x 300 is not a multiple of the 16 x 64 tiles (3 tile rows, 5 tile columns); rows 3 and
  # 20 empty; nse with padding; 8-value chunks (a full tile row takes 8 of them); two tile rows a
  # program (the second program's second tile row lies past the matrix); K split 3 + 2.
  rng = np.random.default_rng(seed)
  dense64 = cases.sparse_dense(rng, (40, 300), density, dtype)
  dense64[[3, 20]] = 0
  matrix = cases.tiled_matrix(dense64, dtype, (16, 64), nse=int((dense64 != 0).sum()) + 37)
  b, b64 = cases.dense_operand(rng, (300, 1), dtype)
  config = Config(block_n=1, tile_rows=2, chunk=8, num_splits=2)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, dtype)


@pytest.mark.parametrize("n,block_n", [(8, 8), (5, 4), (16, 16)], ids=["n8", "n5-two-tiles", "n16"])
def test_several_columns(n, block_n):
  # X's columns in tiles of block_n (N = 5: two column tiles, the second padded), 32-value
  # chunks, one tile row a program, no split.
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, (48, 192), 0.3, jnp.bfloat16)
  matrix = cases.tiled_matrix(dense64, jnp.bfloat16, (16, 64))
  b, b64 = cases.dense_operand(rng, (192, n), jnp.bfloat16)
  cases.check_spmm(_run(matrix, b, Config(block_n=block_n)), dense64, b, b64, jnp.bfloat16)


@pytest.mark.parametrize("shape,tile_shape,density,n", [
    ((16, 64), (16, 64), 0.0, 1),  # nse = 0
    ((16, 64), (16, 64), 1.0, 1),  # one full tile: 64 values a row, two 32-value chunks
    ((50, 40), (32, 32), 0.2, 3),  # K not a multiple of tk, one row past a tile row
], ids=["nse0", "full-tile", "ragged-k"])
def test_edge_shapes(shape, tile_shape, density, n):
  rng = np.random.default_rng()
  dense64 = cases.sparse_dense(rng, shape, density, jnp.float32)
  matrix = cases.tiled_matrix(dense64, jnp.float32, tile_shape)
  b, b64 = cases.dense_operand(rng, (shape[1], n), jnp.float32)
  config = Config(block_n=1 if n == 1 else 4)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.float32)


@pytest.mark.slow
def test_int64_offsets():
  # row_offsets of int64 (a matrix too large for int32 positions) index the values as they are.
  with jax.enable_x64(True):
    rng = np.random.default_rng()
    dense64 = cases.sparse_dense(rng, (32, 128), 0.4, jnp.float32)
    matrix = jsparse.Tiled.fromdense(jnp.asarray(dense64, jnp.float32), tile_shape=(16, 64),
                                     index_dtype=jnp.int64)
    assert matrix.row_offsets.dtype == jnp.int64
    b, b64 = cases.dense_operand(rng, (128, 1), jnp.float32)
    cases.check_spmm(_run(matrix, b, Config()), dense64, b, b64, jnp.float32)


def test_one_row_at_the_end_of_the_values():
  # Only the matrix's last element is stored: the last tile row's span ends at the end of the
  # values (the offset after it comes from the bitmaps), and every other span is empty.
  dense64 = np.zeros((20, 70))
  dense64[-1, -1] = 1.5
  matrix = cases.tiled_matrix(dense64, jnp.float32, (16, 64))
  b, b64 = cases.dense_operand(np.random.default_rng(), (70, 1), jnp.float32)
  cases.check_spmm(_run(matrix, b, Config()), dense64, b, b64, jnp.float32)


def test_gpu_supported_names_what_is_wrong():
  assert tiled_gather.gpu_supported((16, 64), Config()) is True
  assert "chunk=24" in tiled_gather.gpu_supported((16, 64), Config(chunk=24))
  assert "tm * tile_rows=48" in tiled_gather.gpu_supported((16, 64), Config(tile_rows=3))
  with pytest.raises(ValueError, match="chunk=0"):
    Config(chunk=0)


@pytest.mark.parametrize("config", [Config(), Config(block_n=16, tile_rows=2, num_splits=4)],
                         ids=["one-column", "sixteen-columns"])
def test_lowers_to_triton_for_h100(monkeypatch, config):
  struct = jax.ShapeDtypeStruct
  cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda data, columns, bitmaps, offsets, dense: tiled_gather.kernel_fn(
          data, columns, bitmaps, offsets, dense, shape=(256, 1024), config=config),
      struct((5000,), jnp.bfloat16), struct((5000,), jnp.uint8),
      struct((16, 16, 16, 2), jnp.uint32), struct((16, 16, 16), jnp.int32),
      struct((1024, 16), jnp.bfloat16))


def test_gather_launch_only_for_one_column_of_wide_matrices():
  # Not the GPU default any more (the expanding kernel with FMA products beat it), but the
  # launch stays for probes: one column of X, K > M.
  from jsparse._gpu import structured
  from jsparse.formats.layout import SparseLayout

  def layout(shape):
    return SparseLayout("tiled", shape, block_shape=(16, 64))
  chosen = structured.tiled_gather_config(layout((4096, 14336)), 1)
  assert chosen is not None and chosen.block_n == 1 and chosen.tile_rows == 2
  assert structured.tiled_gather_config(layout((14336, 4096)), 1) is None
  assert structured.tiled_gather_config(layout((4096, 14336)), 8) is None


@pytest.mark.parametrize("change, error, message", [
    ("value_columns", TypeError, r"value_columns must be uint8 \(\d+,\)"),
    ("row_offsets", ValueError, r"row_offsets must have shape \(2, 2, 16\)"),
    ("dense", ValueError, r"dense must be \[K=100, N\] of data's dtype"),
    ("dense_dtype", ValueError, r"dense must be \[K=100, N\] of data's dtype float32"),
])
def test_bad_arguments_name_the_argument(change, error, message):
  dense64 = cases.sparse_dense(np.random.default_rng(), (20, 100), 0.3, jnp.float32)
  matrix = cases.tiled_matrix(dense64, jnp.float32, (16, 64))
  args = dict(data=matrix.data, value_columns=matrix.value_columns, bitmaps=matrix.bitmaps,
              row_offsets=matrix.row_offsets, dense=jnp.ones((100, 1), jnp.float32))
  if change == "value_columns":
    args["value_columns"] = args["value_columns"].astype(jnp.int32)
  elif change == "row_offsets":
    args["row_offsets"] = args["row_offsets"][:, :, :8]
  elif change == "dense":
    args["dense"] = jnp.ones((99, 1), jnp.float32)
  else:
    args["dense"] = jnp.ones((100, 1), jnp.bfloat16)
  with pytest.raises(error, match=message):
    tiled_gather.kernel_fn(**args, shape=matrix.shape, interpret=True)
