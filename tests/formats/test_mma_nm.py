"""jsparse.MmaNM: packing a 2:4 matrix into mma.sp's register order and back, and its checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse.formats import mma_nm


def random_nm(seed, shape, dtype, empty_rows=True):
  w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
  if empty_rows and shape[0] > 2:
    w[1] = 0.0
    w[-1] = 0.0
  return jsparse.NM.fromdense(jnp.asarray(w, dtype), n=2, m=4)


# Ragged shapes: M not a multiple of 16, K not of 64, one row, one group.
@pytest.mark.parametrize("shape", [(16, 64), (40, 100), (1, 64), (33, 4), (128, 256), (7, 12)])
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_round_trip_is_exact(shape, dtype):
  matrix = random_nm(sum(shape), shape, dtype)
  packed = jsparse.MmaNM.from_nm(matrix)
  m_tiles, pairs = mma_nm.tiles(shape)
  assert packed.values.shape == (m_tiles, pairs, 2, 32, 4) and packed.values.dtype == jnp.uint32
  assert packed.meta.shape == (m_tiles, pairs, 32) and packed.meta.dtype == jnp.uint32
  assert packed.shape == shape and packed.dtype == jnp.dtype(dtype)
  np.testing.assert_array_equal(np.asarray(packed.todense(), np.float32),
                                np.asarray(matrix.todense(), np.float32))


def test_lane_registers_follow_the_mma_fragment():
  # Row r, group c of a 16x64 matrix holds values (r * 100 + c, -(r * 100 + c)) at positions
  # (c % 3, 3): lane (g, t)'s word 2 * high + half of step s is row 8 * half + g, group
  # 8 s + 4 high + t; its metadata word (t = 2 s + u) holds groups 4u..4u+3 of rows g, g + 8.
  rows, groups = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
  label = (rows * 100 + groups).astype(np.float32)
  data = np.stack([label, -label], -1).reshape(16, 32)
  indices = np.stack([groups % 3, np.full_like(groups, 3)], -1).reshape(16, 32).astype(np.uint8)
  values, meta = mma_nm.pack(jnp.asarray(data, jnp.float16), jnp.asarray(indices), (16, 64))
  halves = np.asarray(values).view(np.float16).reshape(2, 32, 4, 2)
  for lane in (0, 5, 31):
    g, t = divmod(lane, 4)
    for s in (0, 1):
      for word in range(4):
        high, half = divmod(word, 2)
        row, group = 8 * half + g, 8 * s + 4 * high + t
        assert halves[s, lane, word].tolist() == [row * 100 + group, -(row * 100 + group)]
    s, u = divmod(t, 2)
    word = int(np.asarray(meta)[0, 0, lane])
    for half in (0, 1):
      for c in range(4):
        group = 8 * s + 4 * u + c
        assert (word >> (16 * half + 4 * c)) & 0xF == (group % 3) | (3 << 2)


def test_padding_groups_hold_a_valid_pattern():
  # Padded rows and columns: zeros at positions (0, 1), never the invalid 0b0000.
  packed = jsparse.MmaNM.from_nm(random_nm(0, (3, 8), jnp.bfloat16, empty_rows=False))
  nibbles = (np.asarray(packed.meta)[..., None] >> (4 * np.arange(8))) & 0xF
  assert (nibbles != 0).all()
  assert packed.todense().shape == (3, 8)


def test_all_zero_matrix():
  matrix = jsparse.NM.fromdense(jnp.zeros((20, 64), jnp.bfloat16), n=2, m=4)
  packed = jsparse.MmaNM.from_nm(matrix)
  assert not np.asarray(packed.todense(), np.float32).any()


def test_is_a_pytree_under_jit():
  matrix = random_nm(3, (40, 128), jnp.bfloat16)
  packed = jax.jit(jsparse.MmaNM.from_nm)(matrix)
  leaves, treedef = jax.tree_util.tree_flatten(packed)
  assert len(leaves) == 2
  rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
  np.testing.assert_array_equal(np.asarray(jax.jit(lambda a: a.todense())(rebuilt), np.float32),
                                np.asarray(matrix.todense(), np.float32))


def test_bad_input_is_refused_naming_it():
  with pytest.raises(ValueError, match="matrix must be 2:4 for mma.sp, got 1:4"):
    jsparse.MmaNM.from_nm(jsparse.NM.fromdense(jnp.ones((4, 8), jnp.bfloat16), n=1, m=4))
  with pytest.raises(TypeError, match="matrix must hold bfloat16 or float16"):
    jsparse.MmaNM.from_nm(jsparse.NM.fromdense(jnp.ones((4, 8), jnp.float32), n=2, m=4))
  with pytest.raises(TypeError, match="matrix must be a jsparse.NM"):
    jsparse.MmaNM.from_nm(jnp.ones((4, 8)))
  packed = jsparse.MmaNM.from_nm(random_nm(1, (16, 64), jnp.bfloat16))
  with pytest.raises(ValueError, match=r"values must be uint32 \(2, 1, 2, 32, 4\)"):
    jsparse.MmaNM(packed.values, packed.meta, (32, 64), jnp.bfloat16)
  with pytest.raises(ValueError, match="meta must be uint32"):
    jsparse.MmaNM(packed.values, packed.meta.astype(jnp.int32), (16, 64), jnp.bfloat16)
  with pytest.raises(TypeError, match="dtype must be bfloat16 or float16"):
    jsparse.MmaNM(packed.values, packed.meta, (16, 64), jnp.float32)
  with pytest.raises(ValueError, match="multiple of 4"):
    jsparse.MmaNM(packed.values, packed.meta, (16, 62), jnp.bfloat16)


def test_positions_that_do_not_increase_are_refused_naming_meta():
  packed = jsparse.MmaNM.from_nm(random_nm(4, (16, 64), jnp.bfloat16))
  meta = np.asarray(packed.meta).copy()
  meta[0, 0, 5] = (meta[0, 0, 5] & ~np.uint32(0xF0)) | np.uint32(0b0110 << 4)  # (2, 1)
  with pytest.raises(ValueError, match=r"meta\[0, 0, 5\] holds positions \(2, 1\) for its "
                     r"group 1: each group's two kept positions must increase"):
    jsparse.MmaNM(packed.values, meta, (16, 64), jnp.bfloat16)
  meta[0, 0, 5] = np.uint32(0)  # (0, 0): invalid for mma.sp
  with pytest.raises(ValueError, match="must increase"):
    jsparse.MmaNM(packed.values, meta, (16, 64), jnp.bfloat16)
  jsparse.MmaNM(packed.values, meta, (16, 64), jnp.bfloat16, validate=False)  # asked not to
  assert jsparse.MmaNM(packed.values, packed.meta, (16, 64), jnp.bfloat16).shape == (16, 64)
  with pytest.raises(ValueError, match="validate=True needs concrete arrays"):
    jax.jit(lambda v, m: jsparse.MmaNM(v, m, (16, 64), jnp.bfloat16, validate=True).values)(
        packed.values, packed.meta)


def test_fromdense_prunes_to_two_of_four():
  w = jnp.asarray(np.random.default_rng(2).standard_normal((16, 32)), jnp.bfloat16)
  packed = jsparse.MmaNM.fromdense(w)
  np.testing.assert_array_equal(np.asarray(packed.todense(), np.float32),
                                np.asarray(jsparse.NM.fromdense(w).todense(), np.float32))
