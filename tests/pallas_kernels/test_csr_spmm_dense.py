"""pallas_kernels.csr_spmm_dense and dense_product against float64 NumPy (interpret mode on the
CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_spmm_dense, dense_product
from tests.pallas_kernels import csr_cases as cases

# Zeros 8 a store, entries 4 a step: the shapes below are not multiples of them.
SMALL = csr_spmm_dense.DenseSpmmConfig(block_cols=8, block_nnz=4)
# dense_product (the SDDMM dense path's product): 16 x 16 output tiles over D in steps of 16.
PRODUCT = dense_product.ProductConfig(block_m=16, block_n=16, block_d=16, num_warps=4)


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
  # A's dense rows built 16 at a time (16 rows x 32 columns x 4 bytes = 2 KiB): 37 rows take
  # three chunks, the last one short.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=1)
  config = csr_spmm_dense.DenseSpmmConfig(block_cols=8, block_nnz=4, chunk_bytes=2048)
  assert config.chunk_rows(37, 32 * 4) == 16
  _check(case, 12, jnp.float32, rng, config=config)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
def test_dense_rows_every_element_and_duplicates(dtype):
  # Every element of the [R, K'] rows is written (the kernel has no zero-filled input: on a GPU
  # the output buffer starts as whatever memory held);
  # a row of 40 entries over 70 columns takes steps with 8, 0 and several entries; a repeated
  # column (an unvalidated matrix) is added, as the row kernel does.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (6, 70), [40, 0, 70, 1, 9, 0], padding=2, dtype=dtype)
  data, col_indices, row_offsets = case.device(dtype)
  rows = csr_spmm_dense.dense_rows(data, col_indices, row_offsets, num_cols=70, config=SMALL,
                                   interpret=cases.INTERPRET)
  assert rows.shape == (6, 72) and rows.dtype == jnp.dtype(dtype)
  expected = np.zeros((6, 72))
  expected[:, :70] = case.todense64()
  np.testing.assert_array_equal(np.asarray(rows, np.float64), expected)
  clamped = csr_spmm_dense.dense_rows(jnp.asarray([1.0, 2.0, 4.0], dtype),
                                      jnp.asarray([-3, 3, 50], jnp.int32),
                                      jnp.asarray([0, 3, 3], jnp.int32), num_cols=8,
                                      config=SMALL, interpret=cases.INTERPRET)
  np.testing.assert_array_equal(np.asarray(clamped, np.float64),
                                [[1, 0, 0, 2, 0, 0, 0, 4], [0] * 8])


def test_default_config():
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (70, 130), cases.ragged_lengths(rng, 70, 130), padding=2)
  _check(case, 40, jnp.float32, rng, config=None)


def test_product_nt_against_float64():
  rng = np.random.default_rng()
  x, x64 = cases.dense_operand(rng, (21, 37), jnp.float32)
  y, y64 = cases.dense_operand(rng, (19, 37), jnp.float32)
  out = dense_product.product_nt(x, y, config=PRODUCT, interpret=cases.INTERPRET)
  assert out.shape == (32, 32) and out.dtype == jnp.float32
  expected = x64 @ y64.T
  cases.assert_close(out[:21, :19], expected, jnp.float32, np.abs(x64) @ np.abs(y64).T)


@pytest.mark.parametrize("inner,sparsity,n,expected", [
    # The H100 probe's faster path (experiments/results/h100-2026-11-26-spmm-dense/).
    (4096, 0.5, 1024, True), (4096, 0.8, 1024, True), (4096, 0.9, 1024, False),
    (4096, 0.9, 32, False), (4096, 0.98, 128, False), (4096, 0.9, 128, False),
    (4096, 0.5, 128, True), (4096, 0.7, 128, True), (4096, 0.8, 128, False),
    (4096, 0.5, 32, False),  # N < DENSE_MIN_N: the row kernel always
])
def test_prefers_dense(inner, sparsity, n, expected):
  nse = int(4096 * inner * (1 - sparsity))
  assert csr_spmm_dense.prefers_dense(4096, inner, n, nse, jnp.float32) is expected
  assert not csr_spmm_dense.prefers_dense(4096, inner, n, 0, jnp.float32)


@pytest.mark.parametrize("shape,sparsity,n,expected", [
    ((1536, 384), 0.7, 4096, True), ((384, 1536), 0.9, 4096, True),
    ((384, 384), 0.9, 4096, True), ((1536, 384), 0.7, 128, True),
    ((384, 1536), 0.9, 128, False), ((384, 384), 0.9, 128, False), ((384, 384), 0.7, 128, False),
    ((384, 384), 0.9, 32, False),
])
def test_prefers_dense_minilm_layers_bfloat16(shape, sparsity, n, expected):
  # MiniLM's weight shapes, 8 x 512 tokens (N = 4096) and 1 x 128 (N = 128). H100 device time per
  # call, rows / dense (experiments/results/h100-2026-11-26-kernel-time/spmm-path/):
  # - N = 4096: the dense path, 6.0-14.6 us against 20.9-183 us.
  # - N = 128, s = 0.9: the op alone 2.9-5.0 / 5.1-7.4 us; the layer call (spmm(W, x.T).T)
  #   5.5-7.6 / 5.3-7.9.
  # - N = 128, 384 x 384 at s = 0.7: the op 4.1 / 5.2, the layer call 6.7 / 5.4 (the model sees
  #   the op: ROW_FIXED_US). 1536 x 384 at s = 0.7: 8.0 / 7.5 and 10.4 / 7.6.
  # Below 64 columns the row kernel.
  nse = int(shape[0] * shape[1] * (1 - sparsity))
  assert csr_spmm_dense.prefers_dense(*shape, n, nse, jnp.bfloat16) is expected


@pytest.mark.parametrize("shape,sparsity", [((384, 384), 0.7), ((384, 384), 0.9),
                                             ((1536, 384), 0.9), ((384, 1536), 0.9)])
def test_the_layer_call_takes_the_dense_path_at_128_tokens(shape, sparsity):
  # The layer call (operand_transposed) also pays two transposes on the row path: MiniLM's
  # layers at 1 x 128 tokens take the dense path, where the op alone takes the row kernel.
  from jsparse._gpu import csr as gpu_csr
  nse = int(shape[0] * shape[1] * (1 - sparsity))
  assert not gpu_csr.takes_dense_path(*shape, 128, nse, jnp.bfloat16)
  assert gpu_csr.takes_dense_path(*shape, 128, nse, jnp.bfloat16, operand_transposed=True)


def test_bad_arguments_name_the_argument():
  data, cols, offsets = (jnp.ones(3, jnp.float32), jnp.zeros(3, jnp.int32),
                         jnp.array([0, 1, 3], jnp.int32))
  with pytest.raises(ValueError, match="dense must be 2-D \\[K, N\\] of data's dtype"):
    csr_spmm_dense.kernel_fn(data, cols, offsets, jnp.ones((4, 2), jnp.bfloat16), num_rows=2,
                             interpret=True)
  with pytest.raises(ValueError, match="col_indices must be 1-D"):
    csr_spmm_dense.dense_rows(data, cols[None], offsets, num_cols=4, interpret=True)
  with pytest.raises(TypeError, match="data must be float16, bfloat16 or float32"):
    csr_spmm_dense.dense_rows(data.astype(jnp.int32), cols, offsets, num_cols=4, interpret=True)
  with pytest.raises(ValueError, match="num_cols must be >= 1"):
    csr_spmm_dense.dense_rows(data, cols, offsets, num_cols=0, interpret=True)
  with pytest.raises(ValueError, match=r"b must be \[K, N\] with K = 8 and a's dtype"):
    dense_product.xla_product(jnp.ones((4, 8), jnp.float32), jnp.ones((7, 2), jnp.float32))
  with pytest.raises(ValueError, match=r"a must be \[M, K\] float32, bfloat16 or float16"):
    dense_product.xla_product(jnp.ones((4, 8), jnp.int32), jnp.ones((8, 2), jnp.int32))
  with pytest.raises(ValueError, match="block_cols must be a power of two"):
    csr_spmm_dense.DenseSpmmConfig(block_cols=24)
  with pytest.raises(ValueError, match="block_nnz must be a power of two"):
    csr_spmm_dense.DenseSpmmConfig(block_nnz=3)
  with pytest.raises(ValueError, match="ProductConfig.block_d must be a power of two"):
    dense_product.ProductConfig(block_d=24)
  assert "block_n=8" in dense_product.gpu_supported(dense_product.ProductConfig(block_n=8))
  x = jnp.ones((4, 8), jnp.float32)
  with pytest.raises(ValueError, match="y must be \\[N, D\\] with D = 8"):
    dense_product.product_nt(x, jnp.ones((4, 6), jnp.float32), config=PRODUCT)
  with pytest.raises(ValueError, match="x must be \\[M, D\\] float32, bfloat16 or float16"):
    dense_product.product_nt(x.astype(jnp.int32), x, config=PRODUCT)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_lowers_to_triton(monkeypatch, dtype):
  from tests.pallas_kernels import structured_cases
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch,
      lambda d, c, o, b: csr_spmm_dense.kernel_fn(d, c, o, b, num_rows=200),
      jax.ShapeDtypeStruct((500,), dtype), jax.ShapeDtypeStruct((500,), jnp.int32),
      jax.ShapeDtypeStruct((201,), jnp.int32), jax.ShapeDtypeStruct((96, 72), dtype))


@pytest.mark.parametrize("path,dense", [("", True), ("auto", True), ("rows", False),
                                        ("dense", True)])
def test_registered_wrapper_takes_the_path_chosen(monkeypatch, path, dense):
  # jsparse._gpu.csr._spmm takes the dense rows where prefers_dense picks them (here: always),
  # unless JSPARSE_CSR_SPMM_PATH says otherwise; values right either way.
  from jsparse._gpu import csr as gpu_csr
  from jsparse.formats.layout import SparseLayout
  monkeypatch.setenv(gpu_csr.SPMM_PATH_ENV_VAR, path)
  monkeypatch.setattr(gpu_csr.csr_spmm_dense, "prefers_dense", lambda *unused, **hints: True)
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
  assert bool(calls) is dense
  cases.check_product(out, case, b64, jnp.float32)


def test_bad_path_names_the_variable(monkeypatch):
  from jsparse._gpu import csr as gpu_csr
  monkeypatch.setenv(gpu_csr.SPMM_PATH_ENV_VAR, "fast")
  with pytest.raises(ValueError, match="JSPARSE_CSR_SPMM_PATH must be one of"):
    gpu_csr.takes_dense_path(64, 64, 64, 100, jnp.float32)
