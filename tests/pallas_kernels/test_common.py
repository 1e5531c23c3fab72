"""pallas_kernels._common: the byte permute against a NumPy model of PTX's ``prmt.b32``."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import pallas as pl

from pallas_kernels import _common
from tests.pallas_kernels import structured_cases as cases


def _prmt_half(words: np.ndarray, selectors: np.ndarray, half: int) -> np.ndarray:
  """NumPy model: bytes of (words, 0) as 8 bytes, little-endian, picked by the two nibbles of
  ``selectors >> 8 half`` into a uint16."""
  pool = np.concatenate([words[:, None].view(np.uint8).reshape(-1, 4),
                         np.zeros((words.size, 4), np.uint8)], axis=1)
  shifted = selectors >> np.uint32(8 * half)
  low = pool[np.arange(words.size), shifted & 7]
  high = pool[np.arange(words.size), (shifted >> 4) & 7]
  return low.astype(np.uint16) | (high.astype(np.uint16) << 8)


def _permute(words, selectors, half):
  """``permute_half`` compiled on the GPU (inline PTX), else in the Pallas interpreter."""
  def kernel(words_ref, selectors_ref, out_ref):
    out_ref[...] = _common.permute_half(words_ref[...], selectors_ref[...], half,
                                        ptx=not cases.INTERPRET)
  return pl.pallas_call(kernel, out_shape=jax.ShapeDtypeStruct(words.shape, jnp.uint16),
                        interpret=cases.INTERPRET)(words, selectors)


@pytest.mark.parametrize("half", range(4))
def test_permute_half_matches_prmt(half):
  rng = np.random.default_rng()
  words = rng.integers(0, 2**32, 256, dtype=np.uint32)
  # Nibbles 0-7 only (bit 3 of each nibble, PTX's sign mode, is not used).
  selectors = rng.integers(0, 2**32, 256, dtype=np.uint32) & np.uint32(0x77777777)
  got = np.asarray(_permute(jnp.asarray(words), jnp.asarray(selectors), half))
  assert got.dtype == np.uint16
  np.testing.assert_array_equal(got, _prmt_half(words, selectors, half))
  with pytest.raises(ValueError, match="half=4 must be in"):
    _common.permute_half(jnp.asarray(words), jnp.asarray(selectors), 4, ptx=False)


def test_two_four_selectors_place_each_value():
  # The N:M kernel's selector for positions p0 < p1: the low value lands at p0, the high one at
  # p1, zeros at the other two positions; every one of the six 2:4 patterns.
  rng = np.random.default_rng()
  pairs = list(itertools.combinations(range(4), 2))
  words = rng.integers(1, 2**32, len(pairs), dtype=np.uint32)
  first, second = (np.array(p, np.int64) for p in zip(*pairs))
  selectors = (0x54545454 - (0x44 << (8 * first)) - (0x22 << (8 * second))).astype(np.uint32)
  halves = np.stack([_prmt_half(words, selectors, h) for h in range(4)], axis=1)
  expected = np.zeros((len(pairs), 4), np.uint16)
  expected[np.arange(len(pairs)), first] = words & 0xFFFF
  expected[np.arange(len(pairs)), second] = words >> 16
  np.testing.assert_array_equal(halves, expected)
