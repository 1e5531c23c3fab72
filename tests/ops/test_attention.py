"""Block-sparse attention and BlockMask against float64 NumPy references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from hypothesis import example, given, strategies as st

import jsparse
from tests.helpers import fewer_examples
from tests.ops.cases import impls_for, run_forced

# |out - reference| <= ATOL * max|v|: outputs are convex combinations of the values.
ATOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 1e-5,
        jnp.dtype(jnp.float16): 2e-3, jnp.dtype(jnp.bfloat16): 1.6e-2}


def numpy_attention(q, k, v, block_mask, block_size, causal, scale):
  """float64 loop over (batch, head, query): softmax over visible keys, 0 when none."""
  q, k, v = (np.asarray(jnp.asarray(a).astype(jnp.float64)) for a in (q, k, v))
  batch, seq_q, heads_q, _ = q.shape
  seq_k, heads_kv = k.shape[1], k.shape[2]
  bq, bk = block_size
  out = np.zeros(q.shape)
  for b in range(batch):
    for h in range(heads_q):
      kv_head, mask_head = h // (heads_q // heads_kv), 0 if block_mask.shape[0] == 1 else h
      for i in range(seq_q):
        keys = [j for j in range(seq_k) if block_mask[mask_head, i // bq, j // bk]
                and (not causal or j <= i + seq_k - seq_q)]
        if not keys:
          continue
        scores = scale * k[b, keys, kv_head] @ q[b, i, h]
        weights = np.exp(scores - scores.max())
        out[b, i, h] = weights @ v[b, keys, kv_head] / weights.sum()
  return out


def random_qkv(rng, batch, seq_q, seq_k, heads_q, heads_kv, head_dim, dtype):
  def draw(*shape):
    return jnp.asarray(rng.standard_normal(shape), dtype)
  return (draw(batch, seq_q, heads_q, head_dim), draw(batch, seq_k, heads_kv, head_dim),
          draw(batch, seq_k, heads_kv, head_dim))


def randomize_padding(rng, mask):
  """The same mask with random in-range values in the slots past each count (must be ignored)."""
  indices = np.array(mask.kv_block_indices)
  slots = np.arange(indices.shape[-1])
  padding = slots >= np.asarray(mask.kv_block_counts)[..., None]
  indices[padding] = rng.integers(0, mask.num_kv_blocks, size=int(padding.sum()))
  return jsparse.BlockMask(jnp.asarray(indices, jnp.int32), mask.kv_block_counts, mask.block_size,
                           mask.num_kv_blocks)


@st.composite
def attention_cases(draw):
  seed = draw(st.integers(0, 2**32 - 1))
  bq, bk = draw(st.sampled_from([(1, 1), (2, 3), (4, 4), (3, 2), (8, 4)]))
  seq_q, seq_k = draw(st.integers(1, 13)), draw(st.integers(1, 13))
  heads_kv = draw(st.sampled_from([1, 2]))
  heads_q = heads_kv * draw(st.sampled_from([1, 2]))
  mask_heads = draw(st.sampled_from([1, heads_q]))
  density = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
  return dict(seed=seed, block_size=(bq, bk), seq_q=seq_q, seq_k=seq_k, heads_q=heads_q,
              heads_kv=heads_kv, mask_heads=mask_heads, density=density,
              batch=draw(st.sampled_from([1, 2])), head_dim=draw(st.sampled_from([1, 4])),
              causal=draw(st.booleans()),
              dtype=draw(st.sampled_from([jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16])),
              impl=draw(st.sampled_from(impls_for("attention", "block"))))


@fewer_examples(0.35)
@given(case=attention_cases())
def test_attention_matches_numpy(case):
  rng = np.random.default_rng(case["seed"])
  bq, bk = case["block_size"]
  block_shape = (case["mask_heads"], math.ceil(case["seq_q"] / bq), math.ceil(case["seq_k"] / bk))
  dense_mask = rng.random(block_shape) < case["density"]
  mask = jsparse.BlockMask.from_dense(dense_mask, block_size=(bq, bk),
                                      max_kept=block_shape[2] + rng.integers(0, 2))
  mask = randomize_padding(rng, mask)
  q, k, v = random_qkv(rng, case["batch"], case["seq_q"], case["seq_k"], case["heads_q"],
                       case["heads_kv"], case["head_dim"], case["dtype"])
  scale = float(rng.uniform(0.2, 1.0))
  impl = case["impl"]
  out = run_forced(impl, lambda: jax.jit(lambda q, k, v, mask: jsparse.block_sparse_attention(
      q, k, v, mask, causal=case["causal"], scale=scale, impl=impl))(q, k, v, mask))
  if out is None:
    return
  assert out.shape == q.shape and out.dtype == q.dtype
  expected = numpy_attention(q, k, v, dense_mask, (bq, bk), case["causal"], scale)
  actual = np.asarray(out.astype(jnp.float64))
  assert np.isfinite(actual).all()
  tolerance = ATOL[jnp.dtype(case["dtype"])] * np.abs(np.asarray(v.astype(jnp.float64))).max()
  np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance)


def test_rows_without_visible_keys_are_zero_and_default_scale():
  rng = np.random.default_rng(1)
  q, k, v = random_qkv(rng, 1, 6, 6, 2, 1, 4, jnp.float32)
  dense_mask = np.zeros((1, 3, 3), bool)
  dense_mask[0, 1, 2] = True        # query block 1 sees only future keys: causal hides them all
  dense_mask[0, 2, :] = True
  mask = jsparse.BlockMask.from_dense(dense_mask, block_size=(2, 2))
  out = np.asarray(jsparse.block_sparse_attention(q, k, v, mask, causal=True))
  assert (out[:, :4] == 0).all()
  expected = numpy_attention(q, k, v, dense_mask, (2, 2), True, 1 / math.sqrt(4))
  np.testing.assert_allclose(out, expected, atol=1e-5)


def test_gradients_match_finite_differences():
  rng = np.random.default_rng(2)
  q, k, v = random_qkv(rng, 1, 5, 7, 2, 1, 3, jnp.float64)
  mask = jsparse.BlockMask.from_dense(rng.random((2, 3, 4)) < 0.6, block_size=(2, 2))
  fn = jax.jit(lambda q, k, v: jsparse.block_sparse_attention(q, k, v, mask, causal=True))
  check_grads(fn, (q, k, v), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)
  # Rows with no visible key have zero, not NaN, gradients.
  empty = jsparse.BlockMask.from_dense(np.zeros((1, 3, 4), bool), block_size=(2, 2))
  grads = jax.grad(lambda q: jsparse.block_sparse_attention(q, k, v, empty).sum())(q)
  assert (np.asarray(grads) == 0).all()


def test_vmap_over_operands_and_masks():
  rng = np.random.default_rng(3)
  q, k, v = random_qkv(rng, 2, 6, 6, 2, 2, 4, jnp.float64)
  stacked = jnp.stack([q, -q, 2 * q])
  masks = [rng.random((2, 2, 2)) < 0.6 for _ in range(3)]
  shared = jsparse.BlockMask.from_dense(masks[0], block_size=(3, 3), max_kept=2)
  out = jax.vmap(lambda q: jsparse.block_sparse_attention(q, k, v, shared))(stacked)
  for i in range(3):
    expected = numpy_attention(stacked[i], k, v, masks[0], (3, 3), False, 0.5)
    np.testing.assert_allclose(np.asarray(out[i]), expected, atol=1e-12)
  batched_masks = jax.vmap(lambda m: jsparse.BlockMask.from_dense(m, block_size=(3, 3),
                                                                  max_kept=2))(jnp.asarray(masks))
  out = jax.vmap(lambda q, m: jsparse.block_sparse_attention(q, k, v, m))(stacked, batched_masks)
  for i in range(3):
    expected = numpy_attention(stacked[i], k, v, masks[i], (3, 3), False, 0.5)
    np.testing.assert_allclose(np.asarray(out[i]), expected, atol=1e-12)


# -- BlockMask ------------------------------------------------------------------------------------
@fewer_examples(0.6)
@example(seed=0, heads=2, rows=3, cols=4, density=0.4)
@given(seed=st.integers(0, 2**32 - 1), heads=st.integers(1, 3), rows=st.integers(1, 6),
       cols=st.integers(1, 6), density=st.sampled_from([0.0, 0.4, 1.0]))
def test_from_dense_lists_kept_blocks_ascending(seed, heads, rows, cols, density):
  dense_mask = np.random.default_rng(seed).random((heads, rows, cols)) < density
  # Host data is compacted in NumPy, traced data in jax.numpy; one jitted shape checks the latter.
  masks = [jsparse.BlockMask.from_dense(dense_mask, block_size=(2, 3))]
  if (heads, rows, cols) == (2, 3, 4):
    masks.append(jax.jit(lambda m: jsparse.BlockMask.from_dense(m, block_size=(2, 3),
                                                                max_kept=cols))(dense_mask))
  for mask in masks:
    indices, counts = np.asarray(mask.kv_block_indices), np.asarray(mask.kv_block_counts)
    assert indices.dtype == np.int32 and counts.dtype == np.int32
    assert ((indices >= 0) & (indices < cols)).all()
    for h in range(heads):
      for i in range(rows):
        np.testing.assert_array_equal(indices[h, i, :counts[h, i]], np.flatnonzero(dense_mask[h, i]))
    np.testing.assert_array_equal(np.asarray(mask.todense()), dense_mask)
    assert float(mask.density) == pytest.approx(dense_mask.mean())
    assert mask.shape == (heads, rows, cols)


def _token_mask(seq_q, seq_k, rule):
  query = np.arange(seq_q)[:, None] + seq_k - seq_q
  return rule(query, np.arange(seq_k)[None, :])


def _blocks_of(token_mask, block_size):
  bq, bk = block_size
  nqb, nkb = -(-token_mask.shape[0] // bq), -(-token_mask.shape[1] // bk)
  padded = np.zeros((nqb * bq, nkb * bk), bool)
  padded[:token_mask.shape[0], :token_mask.shape[1]] = token_mask
  return padded.reshape(nqb, bq, nkb, bk).any(axis=(1, 3))[None]


@pytest.mark.parametrize("seq_q,seq_k,block_size", [(10, 13, (4, 4)), (7, 7, (2, 3)),
                                                    (1, 17, (1, 5)), (16, 16, (4, 4))])
def test_fixed_patterns_match_token_definitions(seq_q, seq_k, block_size):
  BlockMask = jsparse.BlockMask
  causal = _token_mask(seq_q, seq_k, lambda i, j: j <= i)
  np.testing.assert_array_equal(
      BlockMask.causal(seq_q, seq_k, block_size=block_size).todense(), _blocks_of(causal, block_size))
  for window in (1, 3, 6):
    local = _token_mask(seq_q, seq_k, lambda i, j: (i - j >= 0) & (i - j < window))
    np.testing.assert_array_equal(
        BlockMask.local(seq_q, seq_k, block_size=block_size, window=window).todense(),
        _blocks_of(local, block_size))
    symmetric = _token_mask(seq_q, seq_k, lambda i, j: np.abs(i - j) < window)
    np.testing.assert_array_equal(
        BlockMask.local(seq_q, seq_k, block_size=block_size, window=window, causal=False).todense(),
        _blocks_of(symmetric, block_size))
    sink = _token_mask(seq_q, seq_k, lambda i, j: (j < block_size[1]) & (j <= i))
    np.testing.assert_array_equal(
        BlockMask.local_global(seq_q, seq_k, block_size=block_size, window=window).todense(),
        _blocks_of(local | sink, block_size))
  assert bool(BlockMask.full(seq_q, seq_k, block_size=block_size).todense().all())


def test_bad_arguments_name_themselves():
  q = jnp.ones((1, 8, 4, 2))
  kv = jnp.ones((1, 8, 2, 2))
  mask = jsparse.BlockMask.full(8, 8, block_size=(4, 4))
  with pytest.raises(ValueError, match=r"query heads \(q.shape\[2\] = 4\) must be a multiple"):
    jsparse.block_sparse_attention(q, jnp.ones((1, 8, 3, 2)), jnp.ones((1, 8, 3, 2)), mask)
  with pytest.raises(ValueError, match="q must be 4-D"):
    jsparse.block_sparse_attention(q[0], kv, kv, mask)
  with pytest.raises(ValueError, match="k and v must have the same shape"):
    jsparse.block_sparse_attention(q, kv, kv[:, :4], mask)
  with pytest.raises(TypeError, match="share one dtype"):
    jsparse.block_sparse_attention(q, kv.astype(jnp.bfloat16), kv, mask)
  with pytest.raises(ValueError, match=r"mask must have shape .*got \(1, 2, 4\)"):
    jsparse.block_sparse_attention(q, kv, kv, jsparse.BlockMask.full(4, 8, block_size=(2, 2)))
  with pytest.raises(TypeError, match="mask must be a jsparse.BlockMask"):
    jsparse.block_sparse_attention(q, kv, kv, np.ones((1, 2, 2), bool))
  with pytest.raises(ValueError, match="impl must be one of"):
    jsparse.block_sparse_attention(q, kv, kv, mask, impl="cuda")
  with pytest.raises(ValueError, match="block_size must be two positive ints"):
    jsparse.BlockMask.full(8, 8, block_size=(0, 4))
  with pytest.raises(ValueError, match="max_kept=1 is too small"):
    jsparse.BlockMask.from_dense(np.ones((1, 2, 2), bool), block_size=(4, 4), max_kept=1)
  with pytest.raises(ValueError, match="max_kept must be given"):
    jax.jit(lambda m: jsparse.BlockMask.from_dense(m, block_size=(4, 4)))(np.ones((1, 2, 2), bool))
  with pytest.raises(ValueError, match="window must be a positive int"):
    jsparse.BlockMask.local(8, 8, block_size=(4, 4), window=0)
