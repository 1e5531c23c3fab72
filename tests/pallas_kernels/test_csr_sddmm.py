"""pallas_kernels.csr_sddmm against float64 NumPy dot products (interpret mode on the CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from pallas_kernels import csr_sddmm
from tests.pallas_kernels import csr_cases as cases

# Rows longer than one step; D = 20 takes two inner tiles (the second masked), D = 5 one.
SMALL = csr_sddmm.SddmmConfig(block_nnz=4, block_d=16)


def _check(case: cases.CsrCase, inner: int, dtype, rng, config=SMALL,
           check_reference=False, natural_order=False):
  operands, (x64, y64) = cases.sddmm_operands(case, inner, dtype, rng)
  out = csr_sddmm.kernel_fn(*operands, num_rows=case.shape[0], config=config,
                            interpret=cases.INTERPRET, natural_order=natural_order)
  cases.check_sddmm(out, case, x64, y64, dtype)
  if check_reference:
    reference = csr_sddmm.reference_fn(*operands, num_rows=case.shape[0])
    cases.check_sddmm(reference, case, x64, y64, dtype)


@pytest.mark.parametrize("dtype", cases.DTYPE_PARAMS)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_ragged_rows_with_padding(dtype, seed):
  rng = np.random.default_rng(seed)
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=3)
  _check(case, 20, dtype, rng,
         check_reference=jnp.dtype(dtype) == jnp.float32)  # one dtype: compiles cost


@pytest.mark.parametrize("shape,lengths,inner,padding", cases.SDDMM_EDGE_CASES)
def test_edge_shapes(shape, lengths, inner, padding):
  rng = np.random.default_rng()
  _check(cases.random_csr(rng, shape, lengths, padding=padding), inner, jnp.float32, rng)


def test_d_a_multiple_of_block_d():
  # The kernel's unmasked inner-dimension path (D % block_d == 0): two full D tiles.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (9, 12), cases.ragged_lengths(rng, 9, 12), padding=2)
  _check(case, 2 * SMALL.block_d, jnp.float32, rng)


def test_natural_order_launch():
  # Rows longest bucket first, 2 rows a program with a spare slot in the last one.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (11, 16), [15, 9, 12, 8, 8, 5, 4, 2, 1, 0, 0], padding=2)
  _check(case, 20, jnp.float32, rng, natural_order=True,
         config=csr_sddmm.SddmmConfig(block_nnz=4, block_d=16, rows_per_program=2))


def test_bad_arguments_name_the_argument():
  cases.assert_sddmm_argument_errors(csr_sddmm.kernel_fn)
  with pytest.raises(ValueError, match="block_d must be a power of two"):
    csr_sddmm.SddmmConfig(block_d=6)
  with pytest.raises(ValueError, match="SddmmConfig.prefetch must be one of"):
    csr_sddmm.SddmmConfig(prefetch="both")


@pytest.mark.parametrize("prefetch,inner", [("indices", 16), ("tile", 16), ("tile", 40)],
                         ids=["indices", "tile", "tile-3-d-tiles"])
@pytest.mark.parametrize("rows_per_program", [1, 2])
def test_prefetch_modes(prefetch, inner, rows_per_program):
  # Loads issued one or two steps ahead run past every row's end and past the stored entries
  # (no padding: the last row's prefetches fall off the arrays): they are masked. With D over
  # three tiles, "tile" runs as "indices".
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=0)
  _check(case, inner, jnp.float32, rng, config=csr_sddmm.SddmmConfig(
      block_nnz=4, block_d=16, rows_per_program=rows_per_program, prefetch=prefetch))


def test_rows_per_program_with_a_spare_slot():
  # Two interleaved rows a program, X rows loaded once each (D = block_d); 13 rows leave the last
  # program one spare slot, and rows of one program have different step counts.
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (13, 10), cases.ragged_lengths(rng, 13, 10), padding=3)
  _check(case, SMALL.block_d, jnp.float32, rng,
         config=csr_sddmm.SddmmConfig(block_nnz=4, block_d=16, rows_per_program=2))


@pytest.mark.parametrize("prefetch", csr_sddmm.PREFETCH_MODES)
def test_every_prefetch_mode_lowers_to_triton(monkeypatch, prefetch):
  from tests.pallas_kernels import structured_cases
  config = csr_sddmm.SddmmConfig(block_nnz=16, block_d=64, prefetch=prefetch)
  structured_cases.assert_lowers_to_triton_for_h100(
      monkeypatch,
      lambda c, o, x, y: csr_sddmm.kernel_fn(c, o, x, y, num_rows=64, config=config),
      jax.ShapeDtypeStruct((500,), jnp.int32), jax.ShapeDtypeStruct((65,), jnp.int32),
      jax.ShapeDtypeStruct((64, 64), jnp.float32), jax.ShapeDtypeStruct((96, 64), jnp.float32))


def test_padding_longer_than_a_zeroing_block_is_zeroed():
  # The output is not zero-filled first: one extra program zeroes the padding, a block of
  # ZERO_BLOCK positions at a time (here three blocks, the last one partial).
  rng = np.random.default_rng()
  case = cases.random_csr(rng, (6, 9), cases.ragged_lengths(rng, 6, 9),
                          padding=2 * csr_sddmm.ZERO_BLOCK + 7)
  _check(case, 5, jnp.float32, rng)
