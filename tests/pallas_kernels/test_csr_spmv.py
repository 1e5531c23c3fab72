"""pallas_kernels.csr_spmv against a float64 NumPy product (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_spmv
from tests.pallas_kernels import csr_cases as cases

# Rows per program not dividing M, and rows longer than one step.
SMALL = csr_spmv.SpmvConfig(rows_per_program=4, block_nnz=4)


def _check(case: cases.CsrCase, dtype, rng, config=SMALL,
           check_reference=False, natural_order=False):
  data, col_indices, row_offsets = case.device(dtype)
  x, x64 = cases.dense_operand(rng, (case.shape[1],), dtype)
  out = csr_spmv.kernel_fn(data, col_indices, row_offsets, x, num_rows=case.shape[0],
                           config=config, interpret=cases.INTERPRET,
                           natural_order=natural_order)
  reference = None
  if check_reference:
    reference = csr_spmv.reference_fn(data, col_indices, row_offsets, x,
                                      num_rows=case.shape[0])
  cases.check_product(out, case, x64, dtype, reference)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  rng = np.random.default_rng(seed)
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=3,
                          dtype=dtype)
  _check(case, dtype, rng,
         check_reference=jnp.dtype(dtype) == jnp.float32)  # one dtype: compiles cost


@pytest.mark.parametrize("shape,lengths,padding", [
    ((5, 7), [0, 0, 0, 0, 0], 4),  # nnz = 0 with padding stored
    ((5, 7), [0, 0, 0, 0, 0], 0),  # nse = 0
    ((1, 9), [9], 0),  # one full row
], ids=["nnz0", "nse0", "one-row"])
def test_edge_shapes(shape, lengths, padding):
  rng = np.random.default_rng()
  _check(cases.random_csr(rng, shape, lengths, padding=padding), jnp.float32, rng)


def test_natural_order_launch():
  # Rows longest bucket first; 4 rows a program leave spare slots in the last one.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (11, 16), [15, 9, 12, 8, 8, 5, 4, 2, 1, 0, 0], padding=2)
  _check(case, jnp.float32, rng, natural_order=True)


@pytest.mark.parametrize("natural_order", [False, True], ids=["scheduled", "natural"])
def test_prefetch(natural_order):
  # The next step's entries are loaded a step early: past every row's end and, with no padding,
  # past the stored entries (the last rows' prefetches fall off the arrays): masked.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=0)
  _check(case, jnp.float32, rng, natural_order=natural_order,
         config=csr_spmv.SpmvConfig(rows_per_program=4, block_nnz=4, prefetch=True))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("padding", [0, 5])
def test_aligned_loads(dtype, padding):
  # Rows start anywhere; loads start at the 16-byte boundary below (4 or 8 entries) and read
  # neighbouring rows' entries, which must not count. With no padding the last program's final
  # steps would run past the arrays: they take the masked loop. One row longer than 3 steps.
  rng = np.random.default_rng()
  lengths = cases.ragged_lengths(rng, 13, 40)
  lengths[3] = 37
  case = cases.random_csr(rng, (13, 40), lengths, padding=padding, dtype=dtype)
  _check(case, dtype, rng,
         config=csr_spmv.SpmvConfig(rows_per_program=4, block_nnz=8, aligned_loads=True))


def test_aligned_loads_ignore_non_finite_neighbours():
  # Stored values of other rows are read by a row's aligned loads; an inf there must not turn
  # the row's sum into NaN.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (6, 8), [3, 1, 4, 2, 3, 2], padding=0)
  data, col_indices, row_offsets = case.device(jnp.float32)
  data = data.at[0].set(jnp.inf)  # row 0's first entry
  x = jnp.asarray(rng.standard_normal(8), jnp.float32)
  out = csr_spmv.kernel_fn(data, col_indices, row_offsets, x, num_rows=6, interpret=True,
                           config=csr_spmv.SpmvConfig(rows_per_program=2, block_nnz=4,
                                                      aligned_loads=True))
  assert np.all(np.isfinite(np.asarray(out)[1:])), np.asarray(out)


def test_choose_config_by_rows_and_their_length():
  # Many rows of >= 128 entries: one row a program on one warp (16384 at s = 0.7 / 0.99, 4096 at
  # s = 0.9).
  one_row = csr_spmv.SpmvConfig(rows_per_program=1, block_nnz=512, num_warps=1)
  for size, density in ((16384, 0.3), (16384, 0.01), (4096, 0.1)):
    assert csr_spmv.choose_config(size, int(size * size * density)) == one_row
  # Many rows of 32-127 entries: aligned 32-entry steps of 16 rows (16384 at s = 0.995).
  aligned = csr_spmv.choose_config(16384, int(16384 * 16384 * 0.005))
  assert aligned.aligned_loads and aligned.block_nnz == 32 and aligned.rows_per_program == 16
  # Few rows, or shorter rows of fewer: the default launch.
  assert csr_spmv.choose_config(512, 512 * 1000) == csr_spmv.SpmvConfig(rows_per_program=4,
                                                                         block_nnz=128)
  assert csr_spmv.choose_config(4096, 4096 * 82) == csr_spmv.SpmvConfig(rows_per_program=4,
                                                                         block_nnz=128)


@pytest.mark.parametrize("natural_order", [False, True], ids=["scheduled", "natural"])
def test_one_row_a_program(natural_order):
  # The one-row launch's shape of program on a small matrix: rows longer than one step (40 > 32),
  # empty rows, no padding.
  rng = np.random.default_rng()
  lengths = cases.ragged_lengths(rng, 13, 50)
  lengths[[2, 7]] = [47, 0]
  case = cases.random_csr(rng, (13, 50), lengths, padding=0)
  _check(case, jnp.float32, rng, natural_order=natural_order,
         config=csr_spmv.SpmvConfig(rows_per_program=1, block_nnz=32, num_warps=1))


def test_bad_arguments_name_the_argument():
  data, cols, offsets = (jnp.ones(3, jnp.float32), jnp.zeros(3, jnp.int32),
                         jnp.array([0, 1, 3], jnp.int32))
  with pytest.raises(ValueError, match="x must be 1-D"):
    csr_spmv.kernel_fn(data, cols, offsets, jnp.ones((4, 1), jnp.float32), num_rows=2,
                       interpret=True)
  with pytest.raises(ValueError, match="data must have the shape of col_indices"):
    csr_spmv.kernel_fn(data[:2], cols, offsets, jnp.ones(4, jnp.float32), num_rows=2,
                       interpret=True)
  with pytest.raises(ValueError, match="rows_per_program must be a power of two"):
    csr_spmv.SpmvConfig(rows_per_program=3)
  with pytest.raises(ValueError, match="prefetch and aligned_loads exclude each other"):
    csr_spmv.SpmvConfig(prefetch=True, aligned_loads=True)


@pytest.mark.parametrize("config", [None, csr_spmv.SpmvConfig(aligned_loads=True)],
                         ids=["default", "aligned"])
def test_lowers_to_triton_with_fused_multiply_adds(monkeypatch, config):
  from tests.pallas_kernels import structured_cases
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda d, c, o, x: csr_spmv.kernel_fn(d, c, o, x, num_rows=64, config=config),
      jax.ShapeDtypeStruct((500,), jnp.float32), jax.ShapeDtypeStruct((500,), jnp.int32),
      jax.ShapeDtypeStruct((65,), jnp.int32), jax.ShapeDtypeStruct((96,), jnp.float32))
