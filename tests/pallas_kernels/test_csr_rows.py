"""pallas_kernels._rows.rows_by_length: the sort-free row schedule of the CSR kernels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jsparse.formats import _structure
from pallas_kernels import _rows

# One compilation per shape (eager mode would compile each of its operations).
_rows_by_length = jax.jit(_rows.rows_by_length, static_argnames="max_row_length")


def _schedule(lengths, max_row_length):
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
  return np.asarray(_rows_by_length(jnp.asarray(offsets), max_row_length=max_row_length))


def _expected(lengths):
  # Bucket = bit_length(length); larger buckets first, row index order within a bucket.
  buckets = [int(length).bit_length() for length in lengths]
  return sorted(range(len(lengths)), key=lambda row: (-buckets[row], row))


@settings(max_examples=5, deadline=None)
@given(lengths=st.lists(st.integers(0, 300), min_size=40, max_size=40))
def test_long_rows_first_in_power_of_two_buckets(lengths):
  order = _schedule(lengths, max_row_length=300)
  assert order.dtype == np.int32
  assert order.tolist() == _expected(lengths)


@pytest.mark.parametrize("lengths", [[0, 0, 0], [7], [5, 5, 5, 5], [1, 0, 2, 0, 4, 3]],
                         ids=["all-empty", "one-row", "balanced", "small"])
def test_edge_cases(lengths):
  order = _schedule(lengths, max_row_length=max(lengths + [1]))
  assert order.tolist() == _expected(lengths)


def test_rows_longer_than_the_bound_still_form_a_permutation():
  # A bound that is too small puts the long rows in the first bucket, never drops a row.
  lengths = [100, 3, 0, 64, 1]
  order = _schedule(lengths, max_row_length=8)
  assert sorted(order.tolist()) == list(range(5))
  assert set(order[:2].tolist()) == {0, 3}


@settings(max_examples=10, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=30))
def test_host_check_of_the_launch_order(lengths):
  # jsparse.CSR launches in order exactly when the schedule is the identity or the non-empty
  # rows sit in two adjacent power-of-two buckets.
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  identity = _schedule(lengths, max_row_length=40).tolist() == list(range(len(lengths)))
  bits = [int(n).bit_length() for n in lengths if n > 0]
  balanced = not bits or max(bits) - min(bits) <= 1
  assert _structure.rows_in_launch_order(offsets) == (identity or balanced)
  assert _structure.rows_in_launch_order(np.cumsum([0, 9, 8, 4, 7, 0])) is True  # in order
  assert _structure.rows_in_launch_order(np.cumsum([0, 5, 0, 7, 4, 6])) is True  # balanced
  assert _structure.rows_in_launch_order(np.cumsum([0, 1, 3, 4])) is False
