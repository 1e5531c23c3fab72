"""Pruning masks, the cubic schedule and sparse_from_mask against direct NumPy definitions."""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import jsparse
from jsparse import pruning
from jsparse.pruning import masks as masks_lib


def _weight(seed, shape):
  return np.random.default_rng(seed).standard_normal(shape)


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 9), cols=st.integers(1, 9),
       sparsity=st.floats(0.0, 0.99))
def test_magnitude_mask_prunes_exactly_the_smallest(seed, rows, cols, sparsity):
  weight = _weight(seed, (rows, cols))
  mask = pruning.magnitude_mask(weight, sparsity)
  assert (~mask).sum() == int(np.floor(sparsity * weight.size + 0.5))
  if mask.any() and (~mask).any():
    assert np.abs(weight[mask]).min() >= np.abs(weight[~mask]).max()


@given(seed=st.integers(0, 2**32 - 1), sparsity=st.floats(0.0, 0.99))
def test_global_masks_prune_exactly_over_all_layers(seed, sparsity):
  weights = {"a": _weight(seed, (4, 6)), "b": 3 * _weight(seed + 1, (5, 2))}
  masks = pruning.global_magnitude_masks(weights, sparsity)
  kept = np.concatenate([np.abs(weights[k])[masks[k]] for k in weights])
  dropped = np.concatenate([np.abs(weights[k])[~masks[k]] for k in weights])
  assert dropped.size == int(np.floor(sparsity * 34 + 0.5))
  if kept.size and dropped.size:
    assert kept.min() >= dropped.max()


def test_random_mask_count_and_seed():
  mask = pruning.random_mask((7, 9), 0.4, np.random.default_rng(0))
  assert (~mask).sum() == 25
  assert not np.array_equal(mask, pruning.random_mask((7, 9), 0.4, np.random.default_rng(1)))


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (4, 8), (3, 16)])
def test_nm_mask_keeps_n_largest_of_each_group(n, m):
  weight = _weight(n * m, (5, 2 * m))
  mask = pruning.nm_mask(weight, n, m)
  groups = mask.reshape(5, 2, m)
  assert (groups.sum(-1) == n).all()
  magnitude = np.abs(weight).reshape(5, 2, m)
  assert (np.where(groups, magnitude, np.inf).min(-1) >= np.where(groups, -np.inf, magnitude).max(-1)).all()
  if (n, m) == (2, 4):  # the same choice as the format's own fromdense (one compile suffices)
    expected = np.asarray(jsparse.NM.fromdense(weight, n=n, m=m).todense()) != 0
    np.testing.assert_array_equal(mask, expected)


def test_block_mask_keeps_whole_blocks_by_norm():
  weight = _weight(3, (8, 12))
  weight[4:6, 3:6] *= 100  # the one block that must survive at 1 - 1/16
  mask = pruning.block_mask(weight, 15 / 16, (2, 3))
  assert mask.sum() == 6 and mask[4:6, 3:6].all()
  mask = pruning.block_mask(weight, 0.5, (2, 3))
  blocks = mask.reshape(4, 2, 4, 3)
  assert (blocks.all(axis=(1, 3)) == blocks.any(axis=(1, 3))).all()
  assert blocks.all(axis=(1, 3)).sum() == 8


def test_cubic_schedule():
  kwargs = dict(final_sparsity=0.9, begin_step=10, end_step=110)
  assert pruning.cubic_sparsity(0, **kwargs) == 0.0
  assert pruning.cubic_sparsity(200, **kwargs) == 0.9
  assert pruning.cubic_sparsity(60, **kwargs) == pytest.approx(0.9 - 0.9 * 0.5 ** 3)
  values = [pruning.cubic_sparsity(t, **kwargs, frequency=7) for t in range(120)]
  assert all(b >= a for a, b in zip(values, values[1:]))
  assert pruning.cubic_sparsity(16, **kwargs, frequency=7) == pruning.cubic_sparsity(10, **kwargs)


@pytest.mark.parametrize("fmt", ["csr", "bsr", "nm", "tiled"])
def test_sparse_from_mask_stores_exactly_the_mask(fmt):
  weight = _weight(4, (8, 12))
  mask = {"csr": pruning.magnitude_mask(weight, 0.7), "bsr": pruning.block_mask(weight, 0.5, (4, 4)),
          "nm": pruning.nm_mask(weight), "tiled": pruning.magnitude_mask(weight, 0.6)}[fmt]
  weight[np.argwhere(mask)[0][0], np.argwhere(mask)[0][1]] = 0.0  # a kept zero stays stored
  matrix = pruning.sparse_from_mask(weight, mask, format=fmt, block_shape=(4, 4))
  assert matrix.format == fmt
  np.testing.assert_array_equal(np.asarray(matrix.todense()), np.where(mask, weight, 0))
  assert matrix.data.size == mask.sum()
  bf16 = pruning.sparse_from_mask(jnp.asarray(weight, jnp.bfloat16), mask, format=fmt,
                                  block_shape=(4, 4))
  assert bf16.dtype == jnp.bfloat16


def test_bad_arguments_name_themselves():
  weight = _weight(0, (4, 6))
  for bad in (1.0, -0.1, 2, True):
    with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
      pruning.magnitude_mask(weight, bad)
  with pytest.raises(ValueError, match="m=4 must divide in_features=6"):
    pruning.nm_mask(weight, 2, 4)
  with pytest.raises(ValueError, match=r"block_shape \(4, 4\) must divide"):
    pruning.block_mask(weight, 0.5, (4, 4))
  with pytest.raises(ValueError, match="weight must be 2-D"):
    pruning.magnitude_mask(np.ones(3), 0.5)
  with pytest.raises(ValueError, match="keep exactly n=2"):
    pruning.sparse_from_mask(np.ones((4, 8)), np.ones((4, 8), bool), format="nm")
  with pytest.raises(ValueError, match="format must be one of"):
    pruning.sparse_from_mask(weight, weight > 0, format="coo")
  with pytest.raises(ValueError, match="begin_step < end_step"):
    pruning.cubic_sparsity(3, final_sparsity=0.5, begin_step=5, end_step=5)
  assert masks_lib.num_pruned(10, 0.25) == 3  # halves round up
