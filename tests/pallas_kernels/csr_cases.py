"""Random CSR matrices for the Pallas kernel tests, and how the tests run the kernels.

On a machine where JAX sees a GPU the kernels run compiled (Triton); elsewhere in Pallas
interpret mode, which fills every output with NaN before the kernel runs, so a finite result
proves every element was written (``test_interpret_mode_poisons_outputs`` checks that premise).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

INTERPRET = jax.default_backend() != "gpu"
VALUE_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
# The dtype parameters of the ragged-row tests: float16 takes the same half-precision path as
# bfloat16, so CI (60 s budget) runs it only with the slow tests (the GPU check runs them all).
DTYPE_PARAMS = [pytest.param(dtype, id=jnp.dtype(dtype).name,
                             marks=[pytest.mark.slow] if dtype == jnp.float16 else [])
                for dtype in VALUE_DTYPES]
# Half types are rounded on input and output; float32 accumulation keeps the error to rounding.
TOLERANCE = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.bfloat16): 2e-2,
             jnp.dtype(jnp.float16): 2e-3}


@dataclasses.dataclass(frozen=True)
class CsrCase:
  """A CSR matrix as host arrays: ``data`` [nse], ``col_indices`` [nse], ``row_offsets`` [M+1]."""

  data: np.ndarray
  col_indices: np.ndarray
  row_offsets: np.ndarray
  shape: tuple[int, int]

  def todense64(self) -> np.ndarray:
    dense = np.zeros(self.shape, np.float64)
    for row in range(self.shape[0]):
      span = slice(self.row_offsets[row], self.row_offsets[row + 1])
      dense[row, self.col_indices[span]] = self.data[span].astype(np.float64)
    return dense

  def device(self, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    return (jnp.asarray(self.data, dtype), jnp.asarray(self.col_indices, jnp.int32),
            jnp.asarray(self.row_offsets, jnp.int32))


def random_csr(rng: np.random.Generator, shape: tuple[int, int], row_lengths, *,
               padding: int = 0, dtype=jnp.float32) -> CsrCase:
  """A CSR matrix with the given number of stored entries per row (sorted distinct columns),
  values of magnitude in [0.5, 1.5] with random signs, rounded to ``dtype``, and ``padding``
  trailing entries with in-range columns and nonzero values that the kernels must ignore."""
  num_rows, num_cols = shape
  cols, lengths = [], np.asarray(row_lengths, np.int64)
  for length in lengths:
    cols.append(np.sort(rng.choice(num_cols, size=int(length), replace=False)))
  nnz = int(lengths.sum())
  col_indices = np.concatenate(cols + [rng.integers(0, max(num_cols, 1), padding)]).astype(
      np.int32) if num_rows else np.zeros(padding, np.int32)
  values = rng.uniform(0.5, 1.5, nnz + padding) * rng.choice([-1.0, 1.0], nnz + padding)
  values = np.asarray(jnp.asarray(values, dtype).astype(jnp.float32))
  row_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
  return CsrCase(values, col_indices, row_offsets, (num_rows, num_cols))


def ragged_lengths(rng: np.random.Generator, num_rows: int, num_cols: int) -> np.ndarray:
  """Row lengths with empty rows, a full row and everything between (rows in random order)."""
  lengths = rng.integers(0, num_cols + 1, num_rows)
  if num_rows >= 3:
    lengths[:3] = (0, num_cols, 1)
    rng.shuffle(lengths)
  return lengths


def dense_operand(rng: np.random.Generator, shape, dtype) -> tuple[jax.Array, np.ndarray]:
  """A random dense operand in ``dtype`` and its exact float64 value."""
  array = jnp.asarray(rng.standard_normal(shape), dtype)
  return array, np.asarray(array.astype(jnp.float32), np.float64)


def check_product(out, case, operand64: np.ndarray, dtype, reference=None) -> None:
  """``out``, a kernel's ``A @ operand`` for the CSR ``case`` (and the reference lowering's
  ``reference`` if given), against the float64 product: dtype, every element written, within
  the dtype's tolerance of the sum of absolute products."""
  assert out.dtype == jnp.dtype(dtype)
  dense = case.todense64()
  scale = np.abs(dense) @ np.abs(operand64)
  assert_close(out, dense @ operand64, dtype, scale)
  if reference is not None:
    assert_close(reference, dense @ operand64, dtype, scale)


def assert_close(actual: jax.Array, expected: np.ndarray, dtype, scale: np.ndarray) -> None:
  """Every element finite (written) and within the dtype's tolerance relative to ``scale``,
  the sum of absolute products that formed it."""
  actual = np.asarray(jnp.asarray(actual).astype(jnp.float32), np.float64)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  if actual.size == 0:
    return
  unwritten = np.argwhere(~np.isfinite(actual))
  assert unwritten.size == 0, f"unwritten (NaN) elements at {unwritten[:5].tolist()}"
  tolerance = TOLERANCE[jnp.dtype(dtype)] * (scale + 1.0)
  error = np.abs(actual - expected)
  worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
  assert np.all(error <= tolerance), f"error {error[worst]:.3g} > {tolerance[worst]:.3g} at {worst}"


def assert_sddmm_argument_errors(kernel_fn) -> None:
  """An SDDMM kernel_fn(col_indices, row_offsets, x, y, num_rows=, interpret=) rejects X and Y
  of the wrong shapes with errors naming them."""
  cols, offsets = jnp.zeros(3, jnp.int32), jnp.array([0, 1, 3], jnp.int32)
  x = jnp.ones((2, 4), jnp.float32)
  with pytest.raises(ValueError, match="x must be \\[M, D\\]"):
    kernel_fn(cols, offsets, x[:1], jnp.ones((5, 4), jnp.float32), num_rows=2, interpret=True)
  with pytest.raises(ValueError, match="y must be \\[N, D\\]"):
    kernel_fn(cols, offsets, x, jnp.ones((5, 3), jnp.float32), num_rows=2, interpret=True)


# Edge cases every SDDMM kernel takes: (shape, row lengths, D, padding).
SDDMM_EDGE_CASES = [
    pytest.param((5, 7), [0, 0, 0, 0, 0], 5, 4, id="nnz0"),  # nnz = 0 with padding stored
    pytest.param((5, 7), [0, 0, 0, 0, 0], 5, 0, id="nse0"),  # nse = 0
    pytest.param((1, 9), [9], 1, 0, id="one-row"),  # one full row, D = 1
    pytest.param((20, 3), [3] * 10 + [0] * 10, 16, 2, id="tall-empty-rows"),  # empty rows below
]


def sddmm_operands(case: CsrCase, inner: int, dtype, rng: np.random.Generator):
  """(col_indices, row_offsets, x, y) on the device and (x64, y64) for an SDDMM over ``case``'s
  pattern with inner dimension ``inner``."""
  _, col_indices, row_offsets = case.device(dtype)
  x, x64 = dense_operand(rng, (case.shape[0], inner), dtype)
  y, y64 = dense_operand(rng, (case.shape[1], inner), dtype)
  return (col_indices, row_offsets, x, y), (x64, y64)


def check_sddmm(out, case: CsrCase, x64: np.ndarray, y64: np.ndarray, dtype) -> None:
  """``out`` [nse] against float64 dot products at the stored positions, 0 at padding."""
  assert out.dtype == jnp.dtype(dtype)
  nnz = int(case.row_offsets[-1])
  rows = np.repeat(np.arange(case.shape[0]), np.diff(case.row_offsets))
  cols = case.col_indices[:nnz]
  expected = np.zeros(case.col_indices.shape[0])
  expected[:nnz] = np.sum(x64[rows] * y64[cols], axis=1)
  scale = np.zeros_like(expected)
  scale[:nnz] = np.sum(np.abs(x64[rows] * y64[cols]), axis=1)
  assert_close(out, expected, dtype, scale)
  np.testing.assert_array_equal(np.asarray(out[nnz:], np.float64), 0.0)
