"""pallas_kernels.csr_spmm_dense and dense_product against float64 NumPy (interpret mode on the
CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_spmm_dense, dense_product
from tests.pallas_kernels import csr_cases as cases

# 16 x 16 output tiles over K in steps of 16, 8 entries an expansion step: the shapes below are
# multiples of none of them.
SMALL = csr_spmm_dense.DenseSpmmConfig(
    product=dense_product.ProductConfig(block_m=16, block_n=16, block_d=16, num_warps=4),
    expand_block=8)


def _check(case: cases.CsrCase, n: int, dtype, rng, config=SMALL):
  data, col_indices, row_offsets = case.device(dtype)
  b, b64 = cases.dense_operand(rng, (case.shape[1], n), dtype)
  out = csr_spmm_dense.kernel_fn(data, col_indices, row_offsets, b, num_rows=case.shape[0],
                                 config=config, interpret=cases.INTERPRET)
  cases.check_product(out, case, b64, dtype)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  # 37 x 29 with empty and full rows, N = 20, 3 padding entries (never expanded).
  rng = np.random.default_rng(seed)
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=3,
                          dtype=dtype)
  _check(case, 20, dtype, rng)


@pytest.mark.parametrize("shape,lengths,n,padding", [
    ((5, 7), [0, 0, 0, 0, 0], 8, 4),  # nnz = 0 with padding stored
    ((5, 7), [0, 0, 0, 0, 0], 8, 0),  # nse = 0
    ((1, 9), [9], 1, 0),  # one full row, N = 1
    ((20, 3), [3] * 10 + [0] * 10, 16, 2),  # tall, empty rows below
], ids=["nnz0", "nse0", "one-row", "tall-empty-rows"])
def test_edge_shapes(shape, lengths, n, padding):
  rng = np.random.default_rng()
  _check(cases.random_csr(rng, shape, lengths, padding=padding), n, jnp.float32, rng)


def test_chunks_of_rows():
  # A's dense rows built 16 at a time (16 rows x 29 columns x 4 bytes < 2 KiB): 37 rows take
  # three chunks, the last one short.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=1)
  config = csr_spmm_dense.DenseSpmmConfig(product=SMALL.product, expand_block=8,
                                          chunk_bytes=2048)
  assert config.chunk_rows(37, 29, 4) == 16
  _check(case, 12, jnp.float32, rng, config=config)


def test_default_config():
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (70, 130), cases.ragged_lengths(rng, 70, 130), padding=2)
  _check(case, 40, jnp.float32, rng, config=None)


def test_product_nt_against_float64():
  rng = np.random.default_rng()
  x, x64 = cases.dense_operand(rng, (21, 37), jnp.float32)
  y, y64 = cases.dense_operand(rng, (19, 37), jnp.float32)
  out = dense_product.product_nt(x, y, config=SMALL.product, interpret=cases.INTERPRET)
  assert out.shape == (32, 32) and out.dtype == jnp.float32
  expected = x64 @ y64.T
  cases.assert_close(out[:21, :19], expected, jnp.float32, np.abs(x64) @ np.abs(y64).T)


@pytest.mark.parametrize("inner,sparsity,n,expected", [
    # The H100 probe's faster path (experiments/results/h100-2026-11-26-spmm-dense/).
    (4096, 0.5, 1024, True), (4096, 0.8, 1024, True), (4096, 0.5, 128, False),
    (4096, 0.9, 1024, False), (4096, 0.9, 32, False), (4096, 0.98, 128, False),
])
def test_prefers_dense(inner, sparsity, n, expected):
  nse = int(4096 * inner * (1 - sparsity))
  assert csr_spmm_dense.prefers_dense(4096, inner, n, nse, jnp.float32) is expected
  assert not csr_spmm_dense.prefers_dense(4096, inner, n, 0, jnp.float32)


@pytest.mark.parametrize("shape,n,expected", [
    ((1536, 384), 4096, True), ((384, 1536), 4096, True), ((1536, 384), 128, False),
])
def test_prefers_dense_minilm_layers_bfloat16(shape, n, expected):
  # MiniLM's feed-forward weights at 70% sparsity: 8 x 512 tokens (N = 4096) and 1 x 128.
  nse = int(shape[0] * shape[1] * 0.3)
  assert csr_spmm_dense.prefers_dense(*shape, n, nse, jnp.bfloat16) is expected


def test_bad_arguments_name_the_argument():
  data, cols, offsets = (jnp.ones(3, jnp.float32), jnp.zeros(3, jnp.int32),
                         jnp.array([0, 1, 3], jnp.int32))
  with pytest.raises(ValueError, match="dense must be \\[K, N\\] of data's dtype"):
    csr_spmm_dense.kernel_fn(data, cols, offsets, jnp.ones((4, 2), jnp.bfloat16), num_rows=2,
                             interpret=True)
  with pytest.raises(ValueError, match="expand_block must be a power of two"):
    csr_spmm_dense.DenseSpmmConfig(expand_block=24)
  with pytest.raises(ValueError, match="ProductConfig.block_d must be a power of two"):
    dense_product.ProductConfig(block_d=24)
  assert "block_n=8" in dense_product.gpu_supported(dense_product.ProductConfig(block_n=8))
  x = jnp.ones((4, 8), jnp.float32)
  with pytest.raises(ValueError, match="y must be \\[N, D\\] with D = 8"):
    dense_product.product_nt(x, jnp.ones((4, 6), jnp.float32), config=SMALL.product)
  with pytest.raises(ValueError, match="x must be \\[M, D\\] float32, bfloat16 or float16"):
    dense_product.product_nt(x.astype(jnp.int32), x, config=SMALL.product)
  with pytest.raises(ValueError, match="a scratch column"):
    csr_spmm_dense.expand_rows(data, cols, offsets, jnp.zeros((2, 4), jnp.float32), num_cols=4,
                               block=8, interpret=True)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_lowers_to_triton(monkeypatch, dtype):
  from tests.pallas_kernels import structured_cases
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch,
      lambda d, c, o, b: csr_spmm_dense.kernel_fn(d, c, o, b, num_rows=200),
      jax.ShapeDtypeStruct((500,), dtype), jax.ShapeDtypeStruct((500,), jnp.int32),
      jax.ShapeDtypeStruct((201,), jnp.int32), jax.ShapeDtypeStruct((96, 72), dtype))


@pytest.mark.parametrize("enabled", [False, True], ids=["default", "opt-in"])
def test_registered_wrapper_takes_the_dense_path_only_when_enabled(monkeypatch, enabled):
  # jsparse._gpu.csr._spmm takes the dense rows only with JSPARSE_CSR_SPMM_DENSE=1 and where
  # prefers_dense picks them (a dense 40 x 64 matrix times 256 columns); values right either way.
  from jsparse._gpu import csr as gpu_csr
  from jsparse.formats.layout import SparseLayout
  monkeypatch.setenv(gpu_csr.DENSE_SPMM_ENV_VAR, "1" if enabled else "")
  monkeypatch.setattr(gpu_csr.csr_spmm_dense, "prefers_dense", lambda *unused: True)
  calls = []
  original = csr_spmm_dense.kernel_fn
  monkeypatch.setattr(gpu_csr.csr_spmm_dense, "kernel_fn",
                      lambda *a, **k: calls.append(1) or original(*a, **k))
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (40, 64), [40] * 40, padding=0)
  data, col_indices, row_offsets = case.device(jnp.float32)
  b, b64 = cases.dense_operand(rng, (64, 256), jnp.float32)
  out = gpu_csr._spmm(data, col_indices, row_offsets, b, layout=SparseLayout("csr", (40, 64)),
                      interpret=cases.INTERPRET, transpose=False, impl="pallas")
  assert bool(calls) is enabled
  cases.check_product(out, case, b64, jnp.float32)
