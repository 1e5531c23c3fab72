"""A model with sparse layers saves and restores through Orbax with formats and patterns intact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jsparse.nn import SparseLinear

ocp = pytest.importorskip("orbax.checkpoint", reason="orbax-checkpoint is not installed")


class TwoLayers(nnx.Module):
  def __init__(self, seed: int):
    rngs = nnx.Rngs(seed)
    self.csr = SparseLinear(8, 16, format="csr", sparsity=0.75, rngs=rngs)
    self.bsr = SparseLinear(16, 8, format="bsr", sparsity=0.5, block_shape=(4, 4), rngs=rngs)
    self.nm = SparseLinear(8, 4, format="nm", nm=(2, 4), use_bias=False, rngs=rngs)

  def __call__(self, x):
    return self.nm(jax.nn.relu(self.bsr(jax.nn.relu(self.csr(x)))))


def test_orbax_round_trip(tmp_path):
  model = TwoLayers(seed=0)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 8)), jnp.float32)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "state", nnx.state(model))
  checkpointer.wait_until_finished()
  # A model built from another seed has other patterns; restoring must bring back the saved ones.
  # (Sparse layers choose their pattern on the host, so the target is built, not eval_shape'd.)
  graphdef, other_state = nnx.split(TwoLayers(seed=1))
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, other_state)
  restored = nnx.merge(graphdef, checkpointer.restore(tmp_path / "state", target))
  for name in ("csr", "bsr", "nm"):
    saved, loaded = getattr(model, name).weight, getattr(restored, name).weight
    assert loaded.format == saved.format == name
    for a, b in zip(jax.tree.leaves(saved.matrix), jax.tree.leaves(loaded.matrix)):
      assert a.dtype == b.dtype
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(restored(x)))
  assert not np.array_equal(np.asarray(TwoLayers(seed=1).csr.weight.col_indices[...]),
                            np.asarray(restored.csr.weight.col_indices[...]))
