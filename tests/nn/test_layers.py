"""jsparse.nn layers against dense float64 equivalents; nnx.jit and nnx.grad through each."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jsparse.nn import (BlockSparseAttention, LearnedBlockMask, SparseConv, SparseLinear,
                        SparseTransformerBlock)
from jsparse.nn.learned_mask import block_budget
from tests.ops.test_attention import numpy_attention

F64 = dict(param_dtype=jnp.float64)


def _x(seed, *shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


@pytest.mark.parametrize("fmt,kwargs", [("csr", dict(sparsity=0.9)),
                                        ("bsr", dict(sparsity=0.5, block_shape=(4, 2))),
                                        ("nm", dict(nm=(2, 4))),
                                        ("tiled", dict(sparsity=0.7))])
def test_sparse_linear_from_dense_equals_pruned_dense(fmt, kwargs):
  dense = nnx.Linear(12, 20, rngs=nnx.Rngs(0), **F64)
  dense.bias[...] = _x(1, 20)
  layer = SparseLinear.from_dense(dense, format=fmt, **kwargs)
  kept = np.asarray(layer.weight.matrix.todense()) != 0
  expected_kept = {"csr": 24, "bsr": 120, "nm": 120, "tiled": 72}[fmt]
  assert kept.sum() == expected_kept
  x = _x(2, 3, 5, 12)
  pruned = np.where(kept.T, np.asarray(dense.kernel[...]), 0)
  expected = np.asarray(x) @ pruned + np.asarray(dense.bias[...])
  out = nnx.jit(lambda m, x: m(x))(layer, x)
  assert out.shape == (3, 5, 20) and out.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-12)
  # Gradients of the stored values are the dense kernel's gradients at the kept positions.
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(jnp.sin(m(x)))))(layer)
  dense_grad = jax.grad(lambda k: jnp.sum(jnp.sin(x @ k + dense.bias[...])))(jnp.asarray(pruned))
  sparse_grad = layer.weight.matrix.with_data(grads["weight"]["values"][...]).todense()
  np.testing.assert_allclose(np.asarray(sparse_grad), np.where(kept, np.asarray(dense_grad).T, 0),
                             rtol=1e-10, atol=1e-12)


def test_sparse_linear_constructor_and_dtypes():
  layer = SparseLinear(16, 8, format="nm", nm=(1, 4), use_bias=False, dtype=jnp.bfloat16,
                       rngs=nnx.Rngs(0))
  assert layer.bias is None and layer.sparsity == 0.75
  assert layer(jnp.ones((2, 16))).dtype == jnp.bfloat16
  random = SparseLinear(16, 8, sparsity=0.5, method="random", rngs=nnx.Rngs(0))
  assert random.weight.values[...].size == 64


def test_sparse_linear_sparse_tensor_cores_routing(monkeypatch):
  """With a compressed copy held, short calls keep the N:M matrix's path and long ones go to
  cuSPARSELt (replaced here by a marker: no GPU); the copy is state that nnx.split carries."""
  from jsparse._gpu import cusparselt
  from jsparse.nn.linear import SparseCoreCopy
  layer = SparseLinear(64, 32, format="nm", nm=(2, 4), param_dtype=jnp.bfloat16,
                       rngs=nnx.Rngs(0))
  monkeypatch.setattr(cusparselt, "available", lambda: "no CUDA device visible to JAX")
  with pytest.raises(RuntimeError, match="compress needs cuSPARSELt on a CUDA GPU"):
    layer.use_sparse_tensor_cores()
  short = _x(1, 3, 64).astype(jnp.bfloat16)
  before = layer(short)
  layer.sparse_core = SparseCoreCopy(jnp.arange(8, dtype=jnp.uint8))
  monkeypatch.setattr(cusparselt, "available", lambda: True)
  monkeypatch.setattr(cusparselt, "ROUTE_MIN_WEIGHT", 1)
  monkeypatch.setattr(cusparselt, "matmul_transposed",
                      lambda x, a, alg=None: jnp.full((x.shape[0], a.shape[0]), 1000, x.dtype))
  graphdef, state = nnx.split(layer)
  forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
  np.testing.assert_array_equal(np.asarray(forward(state, short)), np.asarray(before))
  long = jnp.ones((2, cusparselt.ROUTE_MIN_N, 64), jnp.bfloat16)
  bias = np.asarray(layer.bias[...], np.float32)
  np.testing.assert_allclose(np.asarray(forward(state, long)[0, 0], np.float32), 1000 + bias,
                             rtol=1e-2)
  # With the MmaNM copy held too, short calls go to the mma.sp kernel (a marker here).
  from jsparse._gpu import sparse_mma
  from jsparse.formats import MmaNM
  mma = MmaNM.from_nm(layer.weight.matrix.with_data(layer.weight.values[...]))
  layer.sparse_core_values = SparseCoreCopy(mma.values)
  layer.sparse_core_meta = SparseCoreCopy(mma.meta)
  monkeypatch.setattr(sparse_mma, "available", lambda: True)
  monkeypatch.setattr(sparse_mma, "matmul", lambda a, x, tokens_major=False, config=None:
                      jnp.full((x.shape[0], a.shape[0]), 2000, x.dtype))
  graphdef, state = nnx.split(layer)
  out = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, short)
  np.testing.assert_allclose(np.asarray(out[0, 0], np.float32), 2000 + bias, rtol=1e-2)
  from jsparse.nn import tune_sparse_tensor_cores
  for tokens in (0, 2.5):
    with pytest.raises(ValueError, match="tokens must be a positive int"):
      tune_sparse_tensor_cores(layer, tokens)
  layer.use_sparse_tensor_cores(False)
  assert layer.sparse_core is None and layer.sparse_core_values is None
  assert layer.sparse_core_meta is None
  csr = SparseLinear(64, 32, format="csr", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="need a 2:4 N:M weight, this layer's is csr"):
    csr.use_sparse_tensor_cores()
  one_four = SparseLinear(64, 32, format="nm", nm=(1, 4), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="this layer's is nm 1:4"):
    one_four.use_sparse_tensor_cores()


@pytest.mark.parametrize("padding,strides", [("SAME", 1), (((1, 0), (2, 1)), (2, 1))])
def test_sparse_conv_equals_pruned_dense_conv(padding, strides):
  conv = nnx.Conv(3, 8, (3, 2), strides=strides, padding=padding, rngs=nnx.Rngs(0), **F64)
  layer = SparseConv.from_dense(conv, sparsity=0.6)
  weight = np.asarray(layer.weight.matrix.todense())  # [out, in * kh * kw]
  assert (weight != 0).sum() == 8 * 18 - round(0.6 * 8 * 18)
  conv.kernel[...] = jnp.asarray(weight.reshape(8, 3, 3, 2).transpose(2, 3, 1, 0))
  x = _x(3, 2, 7, 6, 3)
  np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m(x))(layer, x)),
                             np.asarray(conv(x)), rtol=1e-12, atol=1e-12)
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) ** 2)))(layer)
  assert grads["weight"]["values"][...].shape == layer.weight.values[...].shape


@nnx.jit
def _projected(layer, x):
  batch, seq, _ = x.shape
  split = lambda proj, heads: proj(x).reshape(batch, seq, heads, layer.head_dim)
  return (split(layer.query, layer.num_heads), split(layer.key, layer.num_kv_heads),
          split(layer.value, layer.num_kv_heads))


def _output(layer, attended):
  """The output projection of attended values [B, S, H, D] (float64 NumPy)."""
  batch, seq = attended.shape[:2]
  return np.asarray(nnx.jit(lambda m, a: m(a))(layer.out, jnp.asarray(attended.reshape(batch, seq, -1))))


@pytest.mark.parametrize("pattern,causal", [("dense", False), ("local_global", True),
                                            ("local", False)])
def test_block_sparse_attention_layer(pattern, causal):
  layer = BlockSparseAttention(16, 4, 2, 6, block_size=(4, 4), causal=causal, pattern=pattern,
                               window=5, rngs=nnx.Rngs(0), **F64)
  x = _x(4, 2, 13, 16)
  q, k, v = (np.asarray(a) for a in _projected(layer, x))
  block_mask = np.asarray(layer.fixed_mask(13, 13).todense())
  attended = numpy_attention(q, k, v, block_mask, (4, 4), causal, 1 / math.sqrt(6))
  expected = _output(layer, attended)
  out = nnx.jit(lambda m, x: m(x))(layer, x)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)
  if pattern == "dense":  # the same numbers as Flax's own dot-product attention
    reference = jax.nn.dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v))
    np.testing.assert_allclose(attended, np.asarray(reference), rtol=1e-6, atol=1e-6)
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) ** 2)))(layer)
  assert np.isfinite(np.asarray(grads["query"]["kernel"][...])).all()


def test_learned_mask_budget_causality_and_attention():
  layer = BlockSparseAttention(16, 4, 2, 8, block_size=(4, 4), causal=True, pattern="learned",
                               density=0.5, num_local_blocks=1, rngs=nnx.Rngs(1), **F64)
  x = _x(5, 2, 32, 16)
  q, k, v = (np.asarray(a) for a in _projected(layer, x))
  layer.eval()  # no gate loss while checking the masks and outputs
  masks = np.asarray(nnx.jit(lambda g, q, k: g(q, k))(layer.gate, q, k))  # [B, H, nqb, nkb]
  visible, forced, budget = block_budget(32, 32, (4, 4), 0.5, True, 1)
  assert masks.shape == (2, 4, 8, 8)
  assert not (masks & ~visible).any()                      # causal: no future block
  assert (masks | ~forced).all()                           # the diagonal always
  np.testing.assert_array_equal(masks.sum(-1), np.broadcast_to(budget, (2, 4, 8)))
  np.testing.assert_array_equal(budget, [max(1, math.ceil(0.5 * (i + 1))) for i in range(8)])
  # The layer attends with exactly these masks, per example.
  out = nnx.jit(lambda m, x: m(x))(layer, x)
  attended = np.stack([numpy_attention(q[b:b + 1], k[b:b + 1], v[b:b + 1], masks[b], (4, 4), True,
                                       1 / math.sqrt(8))[0] for b in range(2)])
  expected = _output(layer, attended)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-10, atol=1e-12)
  # The gate trains on its distillation loss (sown while not deterministic).
  layer.train()
  def gate_loss(model):
    _, sown = nnx.capture(lambda m: m(x), nnx.Intermediate)(model)
    (loss,) = jax.tree.leaves(sown)
    return loss
  grads = nnx.jit(nnx.grad(gate_loss))(layer)
  assert np.abs(np.asarray(grads["gate"]["query_gate"][...])).sum() > 0


def test_gate_loss_is_zero_when_the_gate_matches_dense_attention():
  gate = LearnedBlockMask(1, 1, 4, block_size=(2, 2), causal=True, rngs=nnx.Rngs(0))
  q, k = _x(6, 1, 8, 1, 4), _x(7, 1, 8, 1, 4)
  scores = np.asarray(q[0, :, 0]) @ np.asarray(k[0, :, 0]).T / 2
  scores = np.where(np.tril(np.ones((8, 8), bool)), scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  target = probs.reshape(4, 2, 4, 2).sum(-1).mean(1)
  logits = jnp.log(jnp.asarray(target))[None, None]
  loss = nnx.jit(lambda gate, logits: gate.distillation_loss(logits, q, k))
  assert float(loss(gate, logits)) == pytest.approx(0.0, abs=1e-6)
  assert float(loss(gate, jnp.zeros_like(logits))) > 1e-3


# The post-norm block runs end to end in test_minilm.py (against sentence-transformers).
@pytest.mark.parametrize("norm", ["pre", pytest.param("post", marks=pytest.mark.slow)])
def test_transformer_block_sparse_linears_jit_and_grad(norm):
  block = SparseTransformerBlock(16, 4, 32, num_kv_heads=2, norm=norm, block_size=(4, 4),
                                 causal=True, pattern="local_global", window=4,
                                 sparse_linears=dict(format="nm"), rngs=nnx.Rngs(0), **F64)
  assert isinstance(block.mlp_in, SparseLinear) and isinstance(block.attention.query, SparseLinear)
  x = _x(8, 2, 12, 16)
  out = nnx.jit(lambda m, x: m(x))(block, x)
  assert out.shape == x.shape

  @nnx.jit
  def composed(block, x):
    h = block.attention_norm(x) if norm == "pre" else x
    attended = x + block.attention(h)
    if norm == "post":
      attended = block.attention_norm(attended)
    mlp_in = attended if norm == "post" else block.mlp_norm(attended)
    expected = attended + block.mlp_out(nnx.gelu(block.mlp_in(mlp_in)))
    return block.mlp_norm(expected) if norm == "post" else expected
  np.testing.assert_allclose(np.asarray(out), np.asarray(composed(block, x)), rtol=1e-12,
                             atol=1e-12)
  grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) ** 2)))(block)
  assert np.abs(np.asarray(grads["mlp_in"]["weight"]["values"][...])).sum() > 0


def test_bad_arguments_name_themselves():
  rngs = nnx.Rngs(0)
  with pytest.raises(ValueError, match="num_heads=6 must be a multiple of num_kv_heads=4"):
    BlockSparseAttention(16, 6, 4, 4, rngs=rngs)
  with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
    SparseLinear(8, 8, sparsity=1.0, rngs=rngs)
  with pytest.raises(ValueError, match=r"sparsity must be a number in \[0, 1\)"):
    SparseLinear(8, 8, sparsity=-0.5, rngs=rngs)
  with pytest.raises(ValueError, match="m=4 must divide in_features=6"):
    SparseLinear(6, 8, format="nm", rngs=rngs)
  with pytest.raises(ValueError, match=r"block_shape \(16, 16\) must divide"):
    SparseLinear(8, 8, format="bsr", rngs=rngs)
  with pytest.raises(ValueError, match="format must be one of"):
    SparseLinear(8, 8, format="coo", rngs=rngs)
  learned = BlockSparseAttention(8, 2, 2, 4, block_size=(4, 4), pattern="learned", causal=True,
                                 rngs=rngs)
  with pytest.raises(ValueError, match="sequence length Sq=6 must be a multiple of the block size 4"):
    learned(jnp.ones((1, 6, 8)))
  with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
    LearnedBlockMask(2, 2, 4, density=0.0, rngs=rngs)
  with pytest.raises(ValueError, match="pattern must be one of"):
    BlockSparseAttention(8, 2, 2, 4, pattern="strided", rngs=rngs)
  with pytest.raises(ValueError, match="inputs must have last axis in_features=8"):
    SparseLinear(8, 8, rngs=rngs)(jnp.ones((2, 7)))
  with pytest.raises(TypeError, match="linear must be an nnx.Linear"):
    SparseLinear.from_dense(nnx.Conv(2, 2, 3, rngs=rngs))


def test_import_jsparse_does_not_import_flax():
  import os
  import subprocess
  import sys
  code = "import sys, jsparse; assert 'flax' not in sys.modules, 'flax imported'"
  subprocess.run([sys.executable, "-P", "-c", code], check=True,
                 env=dict(os.environ, JAX_PLATFORMS="cpu"))
