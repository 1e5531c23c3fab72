"""The configs that ``experiments/gpu_checks/csr_bench.py`` times, compiled on a GPU, against
float64 on ragged rows (empty, short, several steps long), before the benchmark times them."""

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.gpu_checks import csr_bench
from pallas_kernels import csr_sddmm, csr_spmm, csr_spmv
from tests.pallas_kernels import csr_cases as cases

pytestmark = pytest.mark.gpu

SPMM_CONFIGS = [(n, config) for (_, n), configs in csr_bench.SPMM_VARIANTS.items()
                for config in configs]
SPMM_CONFIGS += [(n, csr_spmm.choose_config(4096, 4096, n, nse)) for n in (32, 128, 1024)
                 for nse in (4096 * 82, 4096 * 410)]


def _ragged(rng, rows: int = 37, cols: int = 300) -> cases.CsrCase:
  return cases.random_csr(rng, (rows, cols), cases.ragged_lengths(rng, rows, cols), padding=5)


@pytest.mark.parametrize("n,config", SPMM_CONFIGS, ids=str)
def test_spmm_config(n, config):
  rng = np.random.default_rng()
  case = _ragged(rng)
  data, col_indices, row_offsets = case.device(jnp.float32)
  b, b64 = cases.dense_operand(rng, (case.shape[1], n), jnp.float32)
  out = csr_spmm.kernel_fn(data, col_indices, row_offsets, b, num_rows=case.shape[0],
                           config=config, interpret=cases.INTERPRET)
  dense = case.todense64()
  cases.assert_close(out, dense @ b64, jnp.float32, np.abs(dense) @ np.abs(b64))


@pytest.mark.parametrize("config", csr_bench.SDDMM_VARIANTS + (
    csr_sddmm.choose_config(4096, 4096 * 410, 128),), ids=str)
def test_sddmm_config(config):
  rng = np.random.default_rng()
  case = _ragged(rng)
  _, col_indices, row_offsets = case.device(jnp.float32)
  x, x64 = cases.dense_operand(rng, (case.shape[0], 128), jnp.float32)
  y, y64 = cases.dense_operand(rng, (case.shape[1], 128), jnp.float32)
  values = csr_sddmm.kernel_fn(col_indices, row_offsets, x, y, num_rows=case.shape[0],
                               config=config, interpret=cases.INTERPRET)
  stored = int(case.row_offsets[-1])
  rows = np.repeat(np.arange(case.shape[0]), np.diff(case.row_offsets))
  cols = case.col_indices[:stored]
  expected = np.sum(x64[rows] * y64[cols], axis=1)
  scale = np.sum(np.abs(x64[rows]) * np.abs(y64[cols]), axis=1)
  cases.assert_close(values[:stored], expected, jnp.float32, scale)
  np.testing.assert_array_equal(np.asarray(values[stored:]), 0)


@pytest.mark.parametrize("config", [csr_spmv.choose_config(4096, 4096 * 82),
                                    csr_spmv.choose_config(4096, 4096 * 410)],
                         ids=["rows-a-program", "one-row"])
def test_spmv_config(config):
  # The configs the timings use at 4096 x 4096 (mean rows of 82; of 128 and more).
  rng = np.random.default_rng()
  case = _ragged(rng)
  data, col_indices, row_offsets = case.device(jnp.float32)
  x, x64 = cases.dense_operand(rng, (case.shape[1],), jnp.float32)
  out = csr_spmv.kernel_fn(data, col_indices, row_offsets, x, num_rows=case.shape[0],
                           config=config, interpret=cases.INTERPRET)
  dense = case.todense64()
  cases.assert_close(out, dense @ x64, jnp.float32, np.abs(dense) @ np.abs(x64))
