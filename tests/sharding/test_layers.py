"""Tensor-parallel sparse layers equal their single-device computation in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jsparse
from jsparse import sharding
from tests.helpers import make_sparse, random_dense, random_nm_dense
from tests.sharding.meshes import mesh


def _silu(z):
  return z / (1.0 + np.exp(-z))


def _weights(rng, hidden=40, features=16, out=12):
  up = random_dense(rng, (hidden, features), 0.3, ragged=True, empty_rows=3)
  up[:5] = random_dense(rng, (5, features), 1.0)  # a few dense rows: uneven nonzeros
  gate = random_nm_dense(rng, (hidden, features), 2, 4)
  down = random_dense(rng, (out, hidden), 0.3, ragged=True)
  return up, gate, down


@pytest.mark.parametrize("devices", [2, 8])
def test_megatron_mlp_equals_the_dense_mlp(devices):
  rng = np.random.default_rng(devices)
  up, gate, down = _weights(rng)
  x = rng.uniform(-1, 1, (6, up.shape[1]))
  up_bias, down_bias = rng.uniform(-1, 1, up.shape[0]), rng.uniform(-1, 1, down.shape[0])
  weights = sharding.shard_mlp(make_sparse("csr", up), make_sparse("bsr", down, block_shape=(2, 4)),
                               mesh((devices,), ("x",)), "x", gate=make_sparse("nm", gate))
  assert weights["up"].row_cuts == weights["gate"].row_cuts == weights["down"].col_cuts
  assert all(c % 4 == 0 for c in weights["down"].col_cuts)  # down's blocks are 4 columns wide
  out = jax.jit(lambda x, w: sharding.mlp(x, w, up_bias=up_bias, down_bias=down_bias))(
      jnp.asarray(x), weights)
  expected = (_silu(x @ gate.T) * (x @ up.T + up_bias)) @ down.T + down_bias
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-12, atol=1e-12)


def test_mlp_without_gate_on_a_two_dimensional_mesh():
  rng = np.random.default_rng(9)
  up, _, down = _weights(rng)
  x = rng.uniform(-1, 1, (3, up.shape[1]))
  weights = sharding.shard_mlp(make_sparse("coo", up), make_sparse("csr", down),
                               mesh((2, 4), ("x", "y")), ("x", "y"))
  out = jax.jit(lambda x, w: sharding.mlp(x, w, activation=jax.nn.relu))(jnp.asarray(x), weights)
  np.testing.assert_allclose(np.asarray(out), np.maximum(x @ up.T, 0) @ down.T, rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("spec", [P("x"), P(None, "x")])
def test_linear_split_by_outputs_or_inputs(spec):
  rng = np.random.default_rng(10)
  weight, _, _ = _weights(rng)
  x, bias = rng.uniform(-1, 1, (5, weight.shape[1])), rng.uniform(-1, 1, weight.shape[0])
  W = sharding.shard(make_sparse("csr", weight), mesh((4,), ("x",)), spec)
  out = jax.jit(sharding.linear)(jnp.asarray(x), W, jnp.asarray(bias))
  np.testing.assert_allclose(np.asarray(out),
                             x @ weight.T + bias, rtol=1e-12, atol=1e-12)


def test_attention_with_heads_split_equals_one_device():
  # 8 query heads with a mask each, 2 key/value heads copied to the 8 devices.
  devices, heads_kv = 8, 2
  rng = np.random.default_rng(devices)
  batch, seq, heads, dim = 2, 24, 8, 4
  q = jnp.asarray(rng.uniform(-1, 1, (batch, seq, heads, dim)))
  k, v = (jnp.asarray(rng.uniform(-1, 1, (batch, seq, heads_kv, dim))) for _ in range(2))
  blocks = rng.random((heads, 3, 3)) < 0.6
  mask = jsparse.BlockMask.from_dense(blocks, block_size=(8, 8))
  grid = mesh((devices,), ("x",))
  out = jax.jit(lambda q, k, v: sharding.attention(q, k, v, mask, grid, "x", causal=True))(q, k, v)
  expected = jax.jit(lambda q, k, v: jsparse.block_sparse_attention(q, k, v, mask, causal=True))(
      q, k, v)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-12, atol=1e-12)
  assert np.isfinite(np.asarray(out)).all()


def test_layer_arguments_are_checked():
  rng = np.random.default_rng(11)
  up, _, down = _weights(rng)
  grid = mesh((4,), ("x",))
  with pytest.raises(ValueError, match=r"down.shape\[1\] must equal up.shape\[0\] = 40"):
    sharding.shard_mlp(make_sparse("csr", up), make_sparse("csr", down[:, :20]), grid)
  weights = sharding.shard_mlp(make_sparse("csr", up), make_sparse("csr", down), grid)
  weights["down"] = sharding.shard(make_sparse("csr", down), grid, P(None, "x"),
                                   col_cuts=(0, 1, 2, 3, 40))
  with pytest.raises(ValueError, match="build the weights with shard_mlp"):
    sharding.mlp(jnp.ones((2, up.shape[1])), weights)
  q = jnp.ones((1, 8, 6, 4))
  with pytest.raises(ValueError, match=r"q.shape\[2\] = 6 heads must be a multiple of the 4"):
    sharding.attention(q, q, q, jsparse.BlockMask.full(8, 8, block_size=(8, 8)), grid, "x")


def _sparse_linear(rngs, features_in, features_out, **kwargs):
  from jsparse.nn import SparseLinear
  layer = SparseLinear(features_in, features_out, rngs=rngs, **kwargs)
  if layer.bias is not None:  # a nonzero bias (it starts at zero)
    layer.bias[...] = jax.random.normal(rngs.params(), layer.bias[...].shape)
  return layer


@pytest.mark.slow  # building a SparseLinear runs many eager ops: ~25 s on the shared CPU
def test_sharded_sparse_linear_equals_the_layer():
  nnx = pytest.importorskip("flax.nnx")
  rngs = nnx.Rngs(0)
  layer = _sparse_linear(rngs, 16, 40, format="csr", sparsity=0.7)
  x = jax.random.normal(rngs.params(), (5, 16))
  sharded = sharding.shard_linear(layer, mesh((4,), ("x",)), P(None, "x"))
  out = jax.jit(lambda x, kw: sharding.linear(x, **kw))(x, sharded)
  np.testing.assert_allclose(np.asarray(out), np.asarray(jax.jit(lambda x: layer(x))(x)),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # building SparseLinear layers runs many eager ops: ~30 s on the shared CPU
def test_megatron_mlp_of_sparse_linear_layers_equals_the_layers():
  nnx = pytest.importorskip("flax.nnx")
  rngs = nnx.Rngs(1)
  up = _sparse_linear(rngs, 16, 40, format="csr", sparsity=0.7)
  gate = _sparse_linear(rngs, 16, 40, format="nm", nm=(2, 4), use_bias=False)
  down = _sparse_linear(rngs, 40, 16, format="bsr", block_shape=(4, 4), sparsity=0.5)
  x = jax.random.normal(rngs.params(), (5, 16))
  layers = sharding.shard_mlp_layers(up, down, mesh((4,), ("x",)), "x", gate=gate)
  out = jax.jit(lambda x, kw: sharding.mlp(x, **kw))(x, layers)
  expected = jax.jit(lambda x: down(jax.nn.silu(gate(x)) * up(x)))(x)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=1e-5, atol=1e-5)
