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


def test_lowers_to_triton_with_fused_multiply_adds(monkeypatch):
  from tests.pallas_kernels import structured_cases
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda d, c, o, x: csr_spmv.kernel_fn(d, c, o, x, num_rows=64),
      jax.ShapeDtypeStruct((500,), jnp.float32), jax.ShapeDtypeStruct((500,), jnp.int32),
      jax.ShapeDtypeStruct((65,), jnp.int32), jax.ShapeDtypeStruct((96,), jnp.float32))
