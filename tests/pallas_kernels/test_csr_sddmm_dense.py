"""pallas_kernels.csr_sddmm_dense against float64 NumPy dot products (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_sddmm_dense
from tests.pallas_kernels import csr_cases as cases

# 16 x 16 tiles of S over D in steps of 16: the shapes below are not multiples of any of them.
SMALL = csr_sddmm_dense.DenseSddmmConfig(block_m=16, block_n=16, block_d=16, num_warps=4)


def _check(case: cases.CsrCase, inner: int, dtype, rng, config=SMALL):
  _, col_indices, row_offsets = case.device(dtype)
  x, x64 = cases.dense_operand(rng, (case.shape[0], inner), dtype)
  y, y64 = cases.dense_operand(rng, (case.shape[1], inner), dtype)
  out = csr_sddmm_dense.kernel_fn(col_indices, row_offsets, x, y, num_rows=case.shape[0],
                                  config=config, interpret=cases.INTERPRET)
  assert out.dtype == jnp.dtype(dtype)
  nnz = int(case.row_offsets[-1])
  rows = np.repeat(np.arange(case.shape[0]), np.diff(case.row_offsets))
  cols = case.col_indices[:nnz]
  expected = np.zeros(case.col_indices.shape[0])
  expected[:nnz] = np.sum(x64[rows] * y64[cols], axis=1)
  scale = np.zeros_like(expected)
  scale[:nnz] = np.sum(np.abs(x64[rows] * y64[cols]), axis=1)
  cases.assert_close(out, expected, dtype, scale)
  # Padding positions are exactly 0 (they read S[0, 0], which is not 0 here).
  np.testing.assert_array_equal(np.asarray(out[nnz:], np.float64), 0.0)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  rng = np.random.default_rng(seed)
  # 37 x 29 takes 3 x 2 tiles of S, the last ones partly past the matrix; D = 40, 3 steps.
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=3)
  _check(case, 40, dtype, rng)


@pytest.mark.parametrize("sample_block", [16, 32])
def test_sampling_steps(sample_block):
  # Rows longer than one sampling step (16) and shorter.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=2)
  config = csr_sddmm_dense.DenseSddmmConfig(block_m=16, block_n=16, block_d=16, num_warps=4,
                                            sample_block=sample_block)
  _check(case, 24, jnp.float32, rng, config=config)


def test_chunks_of_rows():
  # S computed and sampled 16 rows at a time (one 16 x 16 tile row of a 29-column S is 2 KiB):
  # 37 rows take three chunks, the last one short.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (37, 29), cases.ragged_lengths(rng, 37, 29), padding=2)
  config = csr_sddmm_dense.DenseSddmmConfig(block_m=16, block_n=16, block_d=16, num_warps=4,
                                            chunk_bytes=2048)
  assert config.chunk_rows(37, 29) == 16
  _check(case, 24, jnp.float32, rng, config=config)


def test_chunk_rows():
  config = csr_sddmm_dense.DenseSddmmConfig(chunk_bytes=256 << 20)
  assert config.chunk_rows(4096, 4096) == 4096  # S is 64 MiB: one chunk
  assert config.chunk_rows(32768, 32768) == 2048  # 256 MiB / (4 B x 32768 columns)
  assert config.chunk_rows(100, 10 ** 9) == 128  # at least one tile row
  with pytest.raises(ValueError, match="chunk_bytes must be >= 1"):
    csr_sddmm_dense.DenseSddmmConfig(chunk_bytes=0)


@pytest.mark.parametrize("shape,lengths,inner,padding", [
    ((5, 7), [0, 0, 0, 0, 0], 5, 4),  # nnz = 0 with padding stored
    ((5, 7), [0, 0, 0, 0, 0], 5, 0),  # nse = 0
    ((1, 9), [9], 1, 0),  # one full row, D = 1
    ((20, 3), [3] * 10 + [0] * 10, 16, 2),  # tall, empty rows below, D one full step
], ids=["nnz0", "nse0", "one-row", "tall-empty-rows"])
def test_edge_shapes(shape, lengths, inner, padding):
  rng = np.random.default_rng()
  _check(cases.random_csr(rng, shape, lengths, padding=padding), inner, jnp.float32, rng)


def test_default_config_matches_the_row_kernel():
  # choose_config's tiles (128 x 128, D steps of 32), against the row kernel on the same inputs.
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
  cols, offsets = jnp.zeros(3, jnp.int32), jnp.array([0, 1, 3], jnp.int32)
  x = jnp.ones((2, 4), jnp.float32)
  with pytest.raises(ValueError, match="x must be \\[M, D\\]"):
    csr_sddmm_dense.kernel_fn(cols, offsets, x[:1], jnp.ones((5, 4), jnp.float32), num_rows=2,
                              interpret=True)
  with pytest.raises(ValueError, match="y must be \\[N, D\\]"):
    csr_sddmm_dense.kernel_fn(cols, offsets, x, jnp.ones((5, 3), jnp.float32), num_rows=2,
                              interpret=True)
  with pytest.raises(ValueError, match="block_n must be a power of two"):
    csr_sddmm_dense.DenseSddmmConfig(block_n=48)
  assert "block_d=8" in csr_sddmm_dense.gpu_supported(
      csr_sddmm_dense.DenseSddmmConfig(block_d=8))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_lowers_to_triton(monkeypatch, dtype):
  # float32 lowers with the three-pass TF32 algorithm, 16-bit natively.
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


def test_prefers_dense_never_past_the_memory_budget_or_when_empty():
  cols = csr_sddmm_dense.MAX_TILE_ROW_BYTES // (4 * 128) + 1
  assert not csr_sddmm_dense.prefers_dense(128, cols, 4096, 128 * cols, jnp.float32)
  assert not csr_sddmm_dense.prefers_dense(4096, 4096, 1024, 0, jnp.float32)
  assert not csr_sddmm_dense.prefers_dense(4096, 4096, 0, 4096, jnp.float32)


def test_public_op_takes_the_dense_path_where_preferred(monkeypatch):
  # jsparse.sddmm(impl="pallas") on a dense pattern with a long inner dimension reaches the
  # dense-tile kernel (the dispatch in jsparse._gpu.csr), and its values are right.
  import scipy.sparse
  import jsparse
  from jsparse._gpu import csr as gpu_csr
  calls = []
  original = csr_sddmm_dense.kernel_fn
  monkeypatch.setattr(gpu_csr.csr_sddmm_dense, "kernel_fn",
                      lambda *a, **k: calls.append(1) or original(*a, **k))
  rng = np.random.default_rng()
  pattern = scipy.sparse.random(40, 24, density=0.6, format="csr", random_state=rng,
                                dtype=np.float32)
  a = jsparse.CSR.from_scipy(pattern)
  x = jnp.asarray(rng.standard_normal((40, 256)), jnp.float32)
  y = jnp.asarray(rng.standard_normal((24, 256)), jnp.float32)
  out = jsparse.sddmm(a, x, y, impl="pallas")
  assert calls, "the dense-tile kernel was not called"
  coo = pattern.tocoo()
  expected = np.sum(np.asarray(x, np.float64)[coo.row] * np.asarray(y, np.float64)[coo.col], 1)
  dense_out = np.asarray(out.todense(), np.float64)[coo.row, coo.col]
  np.testing.assert_allclose(dense_out, expected, rtol=1e-4, atol=1e-3)
