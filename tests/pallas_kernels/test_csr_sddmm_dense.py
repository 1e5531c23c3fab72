"""pallas_kernels.csr_sddmm_dense against float64 NumPy dot products (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_sddmm_dense, dense_product
from tests.pallas_kernels import csr_cases as cases

# Chunks of S in multiples of 16 rows: the shapes below are not multiples of it.
SMALL = csr_sddmm_dense.DenseSddmmConfig(chunk_row_multiple=16)


def _check(case: cases.CsrCase, inner: int, dtype, rng, config=SMALL):
  operands, (x64, y64) = cases.sddmm_operands(case, inner, dtype, rng)
  out = csr_sddmm_dense.kernel_fn(*operands, num_rows=case.shape[0], config=config,
                                  interpret=cases.INTERPRET)
  # Padding positions must be exactly 0 (they are never written; S[0, 0] is not 0 here).
  cases.check_sddmm(out, case, x64, y64, dtype)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  rng = np.random.default_rng(seed)
  # 37 x 29, D = 40: one chunk of S (48 rows' worth), rows past the matrix never sampled.
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=3)
  _check(case, 40, dtype, rng)


@pytest.mark.parametrize("sample_block", [16, 32])
def test_sampling_steps(sample_block):
  # Rows longer than one sampling step (16) and shorter.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=2)
  config = csr_sddmm_dense.DenseSddmmConfig(chunk_row_multiple=16, sample_block=sample_block)
  _check(case, 24, jnp.float32, rng, config=config)


def test_chunks_of_rows():
  # S computed and sampled 16 rows at a time (16 rows of a 29-column S are 1856 bytes, 32 would
  # pass 2 KiB): 37 rows take three chunks, the last one short.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=2)
  config = csr_sddmm_dense.DenseSddmmConfig(chunk_row_multiple=16, chunk_bytes=2048)
  assert config.chunk_rows(37, 29) == 16
  _check(case, 24, jnp.float32, rng, config=config)


def test_chunk_rows():
  config = csr_sddmm_dense.DenseSddmmConfig(chunk_bytes=256 << 20)
  assert config.chunk_rows(4096, 4096) == 4096  # S is 64 MiB: one chunk
  assert config.chunk_rows(32768, 32768) == 2048  # 256 MiB / (4 B x 32768 columns)
  assert config.chunk_rows(100, 10 ** 9) == 64  # at least one multiple of 64 rows
  with pytest.raises(ValueError, match="chunk_bytes must be >= 1"):
    csr_sddmm_dense.DenseSddmmConfig(chunk_bytes=0)
  with pytest.raises(ValueError, match="chunk_row_multiple must be >= 1"):
    csr_sddmm_dense.DenseSddmmConfig(chunk_row_multiple=0)


@pytest.mark.parametrize("shape,lengths,inner,padding", cases.SDDMM_EDGE_CASES)
def test_edge_shapes(shape, lengths, inner, padding):
  rng = np.random.default_rng()
  _check(cases.random_csr(rng, shape, lengths, padding=padding), inner, jnp.float32, rng)


def test_default_config_matches_the_row_kernel():
  # choose_config's launch (float32: 64 x 128 tiles, D steps of 32), against the row kernel.
  from pallas_kernels import csr_sddmm
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (130, 70), cases.ragged_lengths(rng, 130, 70), padding=1)
  _, col_indices, row_offsets = case.device(jnp.float32)
  x, _ = cases.dense_operand(rng, (130, 48), jnp.float32)
  y, _ = cases.dense_operand(rng, (70, 48), jnp.float32)
  dense = csr_sddmm_dense.kernel_fn(col_indices, row_offsets, x, y, num_rows=130,
                                    interpret=cases.INTERPRET)
  rows = csr_sddmm.kernel_fn(col_indices, row_offsets, x, y, num_rows=130,
                             interpret=cases.INTERPRET)
  np.testing.assert_allclose(np.asarray(dense), np.asarray(rows), rtol=1e-5, atol=1e-5)


def test_bad_arguments_name_the_argument():
  cases.assert_sddmm_argument_errors(csr_sddmm_dense.kernel_fn)
  with pytest.raises(ValueError, match="sample_block must be a power of two"):
    csr_sddmm_dense.DenseSddmmConfig(sample_block=48)
  # S's product (XLA's dot) names its factors too.
  x = jnp.ones((4, 8), jnp.float32)
  with pytest.raises(ValueError, match=r"y must be \[N, D\] with D = 8 and x's dtype float32"):
    dense_product.xla_product_nt(x, jnp.ones((5, 7), jnp.float32), interpret=True)
  with pytest.raises(ValueError, match=r"y must be \[N, D\] with D = 8 and x's dtype float32"):
    dense_product.xla_product_nt(x, jnp.ones((5, 8), jnp.bfloat16), interpret=True)
  with pytest.raises(ValueError, match=r"x must be \[M, D\] float32, bfloat16 or float16"):
    dense_product.xla_product_nt(x.astype(jnp.int32), x.astype(jnp.int32), interpret=True)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_lowers_to_triton(monkeypatch, dtype):
  # XLA's dot for S (float32 as three TF32 passes, 16-bit natively), then the Triton sampling.
  from tests.pallas_kernels import structured_cases
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch,
      lambda c, o, x, y: csr_sddmm_dense.kernel_fn(c, o, x, y, num_rows=200),
      jax.ShapeDtypeStruct((500,), jnp.int32), jax.ShapeDtypeStruct((201,), jnp.int32),
      jax.ShapeDtypeStruct((200, 72), dtype), jax.ShapeDtypeStruct((96, 72), dtype))


@pytest.mark.parametrize("inner,sparsity,expected", [
    (1024, 0.9, True), (128, 0.7, True), (32, 0.5, True),
    (32, 0.9, False), (128, 0.95, False), (1024, 0.98, False),
])
def test_prefers_dense_on_the_measured_grid(inner, sparsity, expected):
  # The H100 probe's faster path at 4096 x 4096 (the constants' source).
  nse = int(4096 * 4096 * (1 - sparsity))
  assert csr_sddmm_dense.prefers_dense(4096, 4096, inner, nse, jnp.float32) is expected


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_prefers_dense_never_past_the_memory_budget_or_when_empty(dtype):
  # The smallest chunk of S is 64 rows of float32.
  tile_rows = csr_sddmm_dense.DenseSddmmConfig().chunk_row_multiple
  cols = csr_sddmm_dense.MAX_TILE_ROW_BYTES // (4 * tile_rows) + 1
  assert not csr_sddmm_dense.prefers_dense(128, cols, 4096, 128 * cols, dtype)
  assert not csr_sddmm_dense.prefers_dense(4096, 4096, 1024, 0, jnp.float32)
  assert not csr_sddmm_dense.prefers_dense(4096, 4096, 0, 4096, jnp.float32)


def test_registered_wrapper_takes_the_dense_path_where_preferred(monkeypatch):
  # The cuda lowering of sddmm on CSR (jsparse._gpu.csr._sddmm) reaches the dense-tile kernel
  # for a dense pattern with a long inner dimension, and its values are right.
  from jsparse._gpu import csr as gpu_csr
  from jsparse.formats.layout import SparseLayout
  calls = []
  original = csr_sddmm_dense.kernel_fn
  monkeypatch.setattr(gpu_csr.csr_sddmm_dense, "kernel_fn",
                      lambda *a, **k: calls.append(1) or original(*a, **k))
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (40, 24), [14] * 40, padding=0)
  assert csr_sddmm_dense.prefers_dense(40, 24, 256, 14 * 40, jnp.float32)
  _, col_indices, row_offsets = case.device(jnp.float32)
  x, x64 = cases.dense_operand(rng, (40, 256), jnp.float32)
  y, y64 = cases.dense_operand(rng, (24, 256), jnp.float32)
  values = gpu_csr._sddmm(col_indices, row_offsets, x, y, layout=SparseLayout("csr", (40, 24)),
                          interpret=cases.INTERPRET, impl="pallas")
  assert calls, "the dense-tile kernel was not called"
  rows = np.repeat(np.arange(40), 14)
  expected = np.sum(x64[rows] * y64[case.col_indices], axis=1)
  scale = np.sum(np.abs(x64[rows] * y64[case.col_indices]), axis=1)
  cases.assert_close(values, expected, jnp.float32, scale)
