"""Dataset building blocks (``jsparse/datasets/_build.py``): exact uniform sampling, values."""

import numpy as np
import pytest

from jsparse.datasets import _build


@pytest.mark.parametrize("count", [0, 1, 20, 40, 63, 64], ids=lambda c: f"count{c}")
def test_sample_pattern_gives_exactly_count_distinct_sorted_positions(count):
  pattern = _build.sample_pattern(np.random.default_rng(count), (8, 8), count)
  assert pattern.row_offsets.shape == (9,) and pattern.row_offsets[-1] == count
  positions = np.repeat(np.arange(8), np.diff(pattern.row_offsets)) * 8 + pattern.col_indices
  assert np.all(np.diff(positions) > 0) and np.all((pattern.col_indices >= 0) &
                                                   (pattern.col_indices < 8))


# 3 of 400 cells draws positions; 20 of 64 and 50 of 64 (the zeros) threshold keys, then fix up.
@pytest.mark.parametrize("shape, count", [((20, 20), 3), ((8, 8), 20), ((8, 8), 50)], ids=str)
def test_sample_pattern_is_uniform_over_cells(shape, count):
  size = shape[0] * shape[1]
  rng = np.random.default_rng(0)
  trials = 20000 if count == 3 else 3000
  hits = np.zeros(size)
  for _ in range(trials):
    pattern = _build.sample_pattern(rng, shape, count)
    rows = np.repeat(np.arange(shape[0]), np.diff(pattern.row_offsets))
    hits[rows * shape[1] + pattern.col_indices] += 1
  expected = trials * count / size
  # Each cell's count is binomial: allow 5 standard deviations (400 cells, one false alarm in 10^4).
  np.testing.assert_allclose(hits, expected, atol=5 * np.sqrt(expected * (1 - count / size)))


def test_sample_pattern_rejects_a_count_beyond_the_grid():
  with pytest.raises(ValueError, match=r"count must be in \[0, 6\]"):
    _build.sample_pattern(np.random.default_rng(0), (2, 3), 7)


class ZeroNormals:
  """A generator stand-in whose standard normal draws underflow in float16."""

  def standard_normal(self, size, dtype):
    return np.array([0.0, 1e-9, -1.0, 2.0], dtype)[:size]


def test_normal_values_are_never_zero():
  values = _build.normal_values(ZeroNormals(), 4, np.float16)
  assert values.dtype == np.float16 and np.all(values != 0)
  np.testing.assert_array_equal(values[2:], [-1.0, 2.0])


def test_kept_count_rounds_the_kept_fraction():
  assert _build.kept_count(10, 0.9) == 1
  assert _build.kept_count(4096 * 14336, 0.5) == 4096 * 14336 // 2
  assert _build.kept_count(7, 0.0) == 7 and _build.kept_count(7, 1.0) == 0
