"""pallas_kernels.csr_spmm against a float64 NumPy product (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.experimental import pallas as pl

from pallas_kernels import csr_spmm
from tests.pallas_kernels import csr_cases as cases

# Small tiles so that the small test shapes take several steps per row and several N tiles.
SMALL = csr_spmm.SpmmConfig(block_n=16, block_nnz=4)


def _check(case: cases.CsrCase, n: int, dtype, rng, config=SMALL,
           check_reference=False, natural_order=False):
  data, col_indices, row_offsets = case.device(dtype)
  b, b64 = cases.dense_operand(rng, (case.shape[1], n), dtype)
  out = csr_spmm.kernel_fn(data, col_indices, row_offsets, b, num_rows=case.shape[0],
                           config=config, interpret=cases.INTERPRET,
                           natural_order=natural_order)
  reference = None
  if check_reference:
    reference = csr_spmm.reference_fn(data, col_indices, row_offsets, b,
                                      num_rows=case.shape[0])
  cases.check_product(out, case, b64, dtype, reference)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  # 13 x 10 (K < M) with empty rows, a full row, N = 20 (not a multiple of block_n), 3 padding
  # entries.
  rng = np.random.default_rng(seed)
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=3,
                          dtype=dtype)
  _check(case, 20, dtype, rng,
         check_reference=jnp.dtype(dtype) == jnp.float32)  # one dtype: compiles cost


@pytest.mark.parametrize("shape,lengths,n,padding", [
    ((5, 7), [0, 0, 0, 0, 0], 8, 4),  # nnz = 0 with padding stored
    ((5, 7), [0, 0, 0, 0, 0], 8, 0),  # nse = 0
    ((1, 9), [9], 1, 0),  # one full row, N = 1
], ids=["nnz0", "nse0", "one-row"])
def test_edge_shapes(shape, lengths, n, padding):
  rng = np.random.default_rng()
  case = cases.random_csr(rng, shape, lengths, padding=padding)
  _check(case, n, jnp.float32, rng)


def test_n_a_multiple_of_block_n():
  # The kernel's unmasked-columns path (N % block_n == 0): two full N tiles.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (9, 12), cases.ragged_lengths(rng, 9, 12), padding=2)
  _check(case, 2 * SMALL.block_n, jnp.float32, rng)


def test_rows_per_program_with_a_spare_slot():
  # Two interleaved rows a program; 13 rows leave the last program one spare slot, and rows of
  # one program have different step counts (empty, short and full rows).
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=3)
  _check(case, 20, jnp.float32, rng,
         config=csr_spmm.SpmmConfig(block_n=16, block_nnz=4, rows_per_program=2))


@pytest.mark.parametrize("prefetch", ["indices", "tile"])
@pytest.mark.parametrize("rows_per_program", [1, 2])
def test_prefetch_modes(prefetch, rows_per_program):
  # Loads issued a step (indices) or two steps (tile) ahead run past every row's end and past
  # the stored entries (padding 0 here, so the last row's prefetches fall off the arrays): they
  # are masked. Rows of one program have different step counts.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=0)
  _check(case, 20, jnp.float32, rng, config=csr_spmm.SpmmConfig(
      block_n=16, block_nnz=4, rows_per_program=rows_per_program, prefetch=prefetch))


@pytest.mark.parametrize("rows_per_program", [1, 2])
def test_substeps(rows_per_program):
  # Four 4-entry tiles a step: rows end inside any of a step's tiles (their later tiles are
  # masked whole), and rows of one program have different step counts.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 40), cases.ragged_lengths(rng, 13, 40), padding=3)
  _check(case, 20, jnp.float32, rng, config=csr_spmm.SpmmConfig(
      block_n=16, block_nnz=4, rows_per_program=rows_per_program, substeps=4))


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@pytest.mark.parametrize("row_splits,rows_per_program,substeps", [(2, 1, 1), (4, 2, 2)])
def test_row_splits(dtype, row_splits, rows_per_program, substeps):
  # A row's entries split over programs: shares of whole steps, the last ones short or empty
  # (empty rows, rows shorter than one share), partial products summed in float32.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 40), cases.ragged_lengths(rng, 13, 40), padding=3,
                          dtype=dtype)
  _check(case, 20, dtype, rng, config=csr_spmm.SpmmConfig(
      block_n=16, block_nnz=4, rows_per_program=rows_per_program, substeps=substeps,
      row_splits=row_splits))


def test_natural_order_launch():
  # Rows already longest bucket first (9 rows of 8-15 entries, then shorter, then empty): the
  # launch skips the schedule; 2 rows a program leave a spare slot.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (11, 16), [15, 9, 12, 8, 8, 5, 4, 2, 1, 0, 0], padding=2)
  _check(case, 20, jnp.float32, rng, natural_order=True,
         config=csr_spmm.SpmmConfig(block_n=16, block_nnz=4, rows_per_program=2))


def test_choose_config_is_a_valid_config():
  for n in (1, 32, 128, 1024):
    for nse in (0, 4096 * 82, 4096 * 410):
      config = csr_spmm.choose_config(4096, 4096, n, nse)
      assert config.block_n <= max(16, pl.next_power_of_2(n)) and config.block_nnz >= 8
      # One warp (no shared memory, L1 keeps its size) wherever 4096 rows fill the GPU.
      assert config.num_warps == 1 and config.block_n * config.block_nnz <= 1024
  # The H100 winners (2026-11-26, float32): steps of two 8-entry tiles on 64-column tiles;
  # 128-column tiles of 8-entry steps for rows of >= 256 entries at N >= 256; 32 x 16 for N = 32
  # on 4096 rows, 32 x 32 on one warp on launches of fewer than 4096 programs (DLMC's 512 and
  # 2048 rows).
  assert csr_spmm.choose_config(4096, 4096, 128, 4096 * 410) == csr_spmm.SpmmConfig(
      block_n=64, block_nnz=8, num_warps=1, substeps=2)
  assert csr_spmm.choose_config(4096, 4096, 128, 4096 * 82) == csr_spmm.SpmmConfig(
      block_n=64, block_nnz=8, num_warps=1, substeps=2)
  wide = csr_spmm.SpmmConfig(block_n=128, block_nnz=8, num_warps=1)
  for n in (256, 512, 1024):
    assert csr_spmm.choose_config(4096, 4096, n, 4096 * 410) == wide
  assert csr_spmm.choose_config(4096, 4096, 1024, 4096 * 205) == csr_spmm.SpmmConfig(
      block_n=64, block_nnz=8, num_warps=1, substeps=2)
  assert csr_spmm.choose_config(4096, 4096, 1024, 4096 * 82) == csr_spmm.SpmmConfig(
      block_n=64, block_nnz=8, num_warps=1, substeps=2)
  assert csr_spmm.choose_config(4096, 4096, 32, 4096 * 410) == csr_spmm.SpmmConfig(
      block_n=32, block_nnz=16, num_warps=1)
  for rows, cols, mean_row in ((512, 512, 154), (2048, 512, 51), (2048, 512, 154)):
    assert csr_spmm.choose_config(rows, cols, 32, rows * mean_row) == csr_spmm.SpmmConfig(
        block_n=32, block_nnz=32, num_warps=1)
  # Long rows on few programs: each row over one-warp programs, ~48 entries a row each, <= 8
  # (DLMC magnitude-pruned 512 x 2048, H100), fewer where the partial products would pass
  # SPLIT_PARTIALS_BYTES.
  for n, mean_row, splits in ((32, 614, 8), (32, 205, 4), (128, 410, 8), (1024, 614, 8)):
    config = csr_spmm.choose_config(512, 2048, n, 512 * mean_row)
    assert config.num_warps == 1 and config.row_splits == splits, (n, mean_row, config)
  assert csr_spmm.choose_config(384, 1536, 4096, 384 * 1075).row_splits == 4
  assert csr_spmm.choose_config(64, 1536, 1 << 16, 64 * 1075).row_splits == 2
  assert csr_spmm.choose_config(512, 512, 128, 512 * 154).row_splits == 1  # 154-entry rows
  # 1024-2047 rows of >= 256 entries at N > 32 (a sharded matrix's row pieces, H100
  # 2026-11-27): 64-column tiles in at most 4 splits; from 2048 rows and at N = 32, as before.
  pieces = csr_spmm.SpmmConfig(block_n=64, block_nnz=8, num_warps=1, substeps=2, row_splits=4)
  for rows in (1024, 1536, 2047):
    for n in (128, 1024):
      assert csr_spmm.choose_config(rows, 4096, n, rows * 410) == pieces, (rows, n)
  assert csr_spmm.choose_config(2048, 4096, 1024, 2048 * 410) == wide
  assert csr_spmm.choose_config(1024, 4096, 1024, 1024 * 205).row_splits == 1  # 205 < 256
  assert csr_spmm.choose_config(1024, 4096, 32, 1024 * 410) == csr_spmm.choose_config(
      512, 4096, 32, 512 * 410) == csr_spmm.SpmmConfig(block_n=32, block_nnz=16, num_warps=1,
                                                        row_splits=8)
  # Four warps (64 x 32) where one-warp programs would not fill the GPU (384 rows x 2 N tiles;
  # H200 bf16 MiniLM layers).
  four_warps = csr_spmm.SpmmConfig(block_n=64, block_nnz=32, num_warps=4)
  assert csr_spmm.choose_config(384, 1536, 128, 384 * 154) == four_warps
  assert csr_spmm.choose_config(384, 1536, 4096, 384 * 154).num_warps == 1
  assert csr_spmm.choose_config(1536, 384, 4096, 1536 * 115).num_warps == 1


def test_bad_arguments_name_the_argument():
  data, cols, offsets = (jnp.ones(3, jnp.float32), jnp.zeros(3, jnp.int32),
                         jnp.array([0, 1, 3], jnp.int32))
  b = jnp.ones((4, 2), jnp.float32)
  with pytest.raises(ValueError, match="row_offsets"):
    csr_spmm.kernel_fn(data, cols, offsets, b, num_rows=3, interpret=True)
  with pytest.raises(TypeError, match="col_indices must be int32"):
    csr_spmm.kernel_fn(data, cols.astype(jnp.int16), offsets, b, num_rows=2, interpret=True)
  with pytest.raises(TypeError, match="data must be float16, bfloat16 or float32"):
    csr_spmm.kernel_fn(data.astype(jnp.int32), cols, offsets, b.astype(jnp.int32), num_rows=2,
                       interpret=True)
  with pytest.raises(ValueError, match="b must be 2-D"):
    csr_spmm.kernel_fn(data, cols, offsets, b.astype(jnp.bfloat16), num_rows=2, interpret=True)
  with pytest.raises(ValueError, match="block_n must be a power of two"):
    csr_spmm.SpmmConfig(block_n=24)
  with pytest.raises(ValueError, match="SpmmConfig.prefetch must be one of"):
    csr_spmm.SpmmConfig(prefetch="both")
  with pytest.raises(ValueError, match="SpmmConfig.row_splits must be a power of two"):
    csr_spmm.SpmmConfig(row_splits=3)
  with pytest.raises(ValueError, match="SpmmConfig.substeps must be a power of two"):
    csr_spmm.SpmmConfig(substeps=3)
  with pytest.raises(ValueError, match="substeps > 1 needs prefetch 'none'"):
    csr_spmm.SpmmConfig(substeps=2, prefetch="indices")


@pytest.mark.skipif(not cases.INTERPRET, reason="interpret mode only (a GPU leaves memory as is)")
def test_interpret_mode_poisons_outputs():
  # The premise of the "every element written" checks: unwritten outputs read back as NaN.
  out = pl.pallas_call(lambda x_ref, o_ref: None, interpret=True,
                       out_shape=jax.ShapeDtypeStruct((4,), jnp.float32))(jnp.ones(4))
  assert np.all(np.isnan(np.asarray(out)))


@pytest.mark.parametrize("prefetch,substeps,row_splits",
                         [(mode, 1, 1) for mode in csr_spmm.PREFETCH_MODES]
                         + [("none", 4, 1), ("none", 2, 4)])
def test_every_prefetch_mode_lowers_to_triton(monkeypatch, prefetch, substeps, row_splits):
  from tests.pallas_kernels import structured_cases
  config = csr_spmm.SpmmConfig(block_n=32, block_nnz=16, prefetch=prefetch, substeps=substeps,
                               row_splits=row_splits)
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch,
      lambda d, c, o, b: csr_spmm.kernel_fn(d, c, o, b, num_rows=64, config=config),
      jax.ShapeDtypeStruct((500,), jnp.float32), jax.ShapeDtypeStruct((500,), jnp.int32),
      jax.ShapeDtypeStruct((65,), jnp.int32), jax.ShapeDtypeStruct((96, 40), jnp.float32))
