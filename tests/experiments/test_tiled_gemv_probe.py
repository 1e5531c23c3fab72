"""experiments/gpu_checks/tiled_gemv_probe.py's launch specs (the GPU timing itself runs on a
device only)."""

import dataclasses

import pytest

from experiments.gpu_checks.tiled_gemv_probe import CHECK_CONFIGS, parse_config
from jsparse._gpu import tiled_gemv


def test_specs_name_every_launch_field():
  config = tiled_gemv.TiledGemvConfig
  assert parse_config("2-16-3")(1, 64, 64) == config(2, 16, 3)
  assert parse_config("1-32-1-h")(1, 64, 64).x_source == "16-bit"
  assert parse_config("1-32-1-g")(1, 64, 64) == config(1, 32, 1, "global")
  assert parse_config("default")(2, 14336, 4096) == tiled_gemv.default_config(2, 14336, 4096)
  assert parse_config("default-g")(1, 4096, 14336) == dataclasses.replace(
      tiled_gemv.default_config(1, 4096, 14336), x_source="global")
  assert parse_config("4-16-1-f").label == "4-16-1-f"
  with pytest.raises(KeyError):
    parse_config("1-16-1-x")


def test_checked_launches_are_valid():
  for spec in CHECK_CONFIGS:
    assert isinstance(parse_config(spec)(1, 40, 100), tiled_gemv.TiledGemvConfig)


def test_check_launch_flags_wrong_shapes_values_and_failures():
  import numpy as np

  from experiments.gpu_checks.tiled_mma_probe import check_launch
  expected = np.arange(6.0).reshape(3, 2) - 2.0
  assert check_launch(lambda: expected + 1e-4, expected)[1]
  assert not check_launch(lambda: expected + 1.0, expected)[1]
  assert not check_launch(lambda: expected[:2], expected)[1]
  assert not check_launch(lambda: np.full((3, 2), np.nan), expected)[1]
  err, ok = check_launch(lambda: 1 / 0, expected)
  assert not ok and err.startswith("ZeroDivisionError")


def test_check_cases_and_table(tmp_path):
  import jax.numpy as jnp
  import numpy as np

  from experiments.gpu_checks.tiled_mma_probe import CheckTable, check_cases
  cases = list(check_cases(np.random.default_rng(0), ((40, 100), (1, 64)), (1, 3),
                           densities=lambda shape: (0.3, 0.0) if shape == (40, 100) else (0.3,)))
  # shapes x dtypes x densities x columns
  assert len(cases) == 2 * 2 * 2 + 1 * 2 * 1 * 2
  table = CheckTable()
  for shape, density, dtype, matrix, n, x, expected in cases:
    assert matrix.shape == shape and x.shape == (shape[1], n) and expected.shape == (shape[0], n)
    product = np.asarray(matrix.todense(), np.float64) @ np.asarray(x, np.float64)
    np.testing.assert_allclose(expected, product)
    table.add(shape, density, dtype, n, "exact", lambda e=expected: e, expected)
  table.add((1, 64), 0.3, jnp.bfloat16, 1, "off", lambda: expected + 1.0, expected)
  # check_all: each case's launches, checked as product(matrix, x, shape, config).
  table.check_all(cases[:2], lambda matrix, n, shape: ["dense", "skipped"][:1],
                  lambda matrix, x, shape, config: (np.asarray(matrix.todense(), np.float64)
                                                    @ np.asarray(x, np.float64)))
  assert len(table.rows) == len(cases) + 3
  assert table.write(tmp_path) == 1
  text = (tmp_path / "checks.md").read_text()
  assert text.count("| ok |") == len(cases) + 2 and text.count("| WRONG |") == 1



def test_timing_cases_pair_each_matrix_with_its_product():
  import numpy as np

  from experiments.gpu_checks.tiled_mma_probe import timing_cases
  cases = list(timing_cases((0.7, 0.9), ((40, 100), (17, 64)), (1, 3)))
  assert [(c[0], c[1], c[4]) for c in cases] == [
      (s, shape, n) for s in (0.7, 0.9) for shape in ((40, 100), (17, 64)) for n in (1, 3)]
  for sparsity, shape, matrix, w, n, x, expected in cases:
    assert matrix.shape == shape and w.shape == shape and x.shape == (shape[1], n)
    product = np.asarray(w, np.float32) @ np.asarray(x, np.float32)
    np.testing.assert_allclose(np.asarray(expected, np.float32), product, rtol=2e-2, atol=2e-2)
