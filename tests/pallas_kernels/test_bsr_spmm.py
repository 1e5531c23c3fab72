"""pallas_kernels.bsr_spmm against a float64 NumPy product (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from pallas_kernels import bsr_spmm
from tests.pallas_kernels import structured_cases as cases

SMALL = bsr_spmm.BsrSpmmConfig(block_n=16)


def _run(matrix: jsparse.BSR, b, config=SMALL):
  return bsr_spmm.kernel_fn(matrix.data, matrix.col_indices, matrix.row_offsets, b,
                            shape=matrix.shape, config=config, interpret=cases.INTERPRET)


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_blocks_with_empty_block_rows(dtype, seed):
  # 4 x 3 grid of 16x32 blocks (non-square), block row 1 empty, N = 20; nse = 9 (the most the
  # other block rows can hold) keeps one compiled shape and stores padding blocks.
  rng = np.random.default_rng(seed)
  dense64 = cases.block_sparse_dense(rng, (64, 96), (16, 32), 0.5, dtype, empty_block_rows=[1])
  matrix = jsparse.BSR.fromdense(jnp.asarray(dense64, dtype), block_shape=(16, 32), nse=9)
  b, b64 = cases.dense_operand(rng, (96, 20), dtype)
  cases.check_spmm(_run(matrix, b), dense64, b, b64, dtype)


@pytest.mark.parametrize("shape,block_shape,density,n,index_dtype", [
    ((32, 48), (16, 16), 0.0, 8, jnp.int32),  # nse = 0: every output row is zero
    pytest.param((16, 64), (16, 32), 1.0, 1, jnp.int32,  # one block row, all stored, N = 1
                 marks=pytest.mark.slow),
    pytest.param((96, 32), (32, 16), 0.4, 17, jnp.int64,  # tall, 32x16 blocks, N past a tile
                 marks=pytest.mark.slow),
], ids=["nse0", "one-block-row", "tall-int64"])
def test_edge_shapes(shape, block_shape, density, n, index_dtype):
  rng = np.random.default_rng()
  dense64 = cases.block_sparse_dense(rng, shape, block_shape, density, jnp.float32)
  matrix = jsparse.BSR.fromdense(jnp.asarray(dense64, jnp.float32), block_shape=block_shape,
                                 index_dtype=index_dtype)
  b, b64 = cases.dense_operand(rng, (shape[1], n), jnp.float32)
  cases.check_spmm(_run(matrix, b), dense64, b, b64, jnp.float32)
  reference = bsr_spmm.reference_fn(matrix.data, matrix.col_indices, matrix.row_offsets, b,
                                    shape=matrix.shape)
  cases.check_spmm(reference, dense64, b, b64, jnp.float32)


def test_gpu_supported_names_the_tile():
  assert bsr_spmm.gpu_supported((16, 32), SMALL) is True
  assert "bm=8" in bsr_spmm.gpu_supported((8, 32), SMALL)
  assert "bk=24" in bsr_spmm.gpu_supported((16, 24), SMALL)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_lowers_to_triton_for_h100(monkeypatch, dtype):
  struct = jax.ShapeDtypeStruct
  cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda data, cols, offsets, dense: bsr_spmm.kernel_fn(
          data, cols, offsets, dense, shape=(256, 1024)),
      struct((50, 32, 32), dtype), struct((50,), jnp.int32), struct((9,), jnp.int32),
      struct((1024, 8), dtype))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "bsr"),
                    reason="no pallas BSR kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_and_spmv_through_the_kernel():
  rng = np.random.default_rng()
  dense64 = cases.block_sparse_dense(rng, (64, 32), (16, 16), 0.5, jnp.bfloat16)
  matrix = jsparse.BSR.fromdense(jnp.asarray(dense64, jnp.bfloat16), block_shape=(16, 16))
  b, b64 = cases.dense_operand(rng, (32, 5), jnp.bfloat16)
  cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, jnp.bfloat16)
  cases.check_spmm(jsparse.spmv(matrix, b[:, 0], impl="pallas")[:, None], dense64, b[:, :1],
                   b64[:, :1], jnp.bfloat16)
  with pytest.raises(NotImplementedError, match="A.T @ B"):
    jsparse.spmm(matrix, jnp.ones((64, 2), jnp.bfloat16), transpose_a=True, impl="pallas")
