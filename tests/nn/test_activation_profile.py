"""The activation profiler counts what the activations actually produced."""

import jax
import numpy as np
from flax import nnx

from jsparse.nn import SparseTransformerBlock
from jsparse.nn.activation_profile import profile_activations


def test_profile_counts_zeros_and_near_zeros_of_each_site():
  blocks = nnx.List([SparseTransformerBlock(8, 2, 16, activation=act, block_size=(4, 4),
                                            rngs=nnx.Rngs(i))
                     for i, act in enumerate((jax.nn.relu, jax.nn.gelu))])
  x = jax.random.normal(jax.random.key(0), (2, 8, 8))
  seen = []

  def run(blocks):
    h = x
    for block in blocks:
      attended = h + block.attention(block.attention_norm(h))
      seen.append(np.asarray(block.activation(block.mlp_in(block.mlp_norm(attended)))))
      h = block(h)

  stats = profile_activations(blocks, run, thresholds=(0.0, 0.05))
  # seen[] was computed through the wrapped activations too: each site ran twice per block.
  assert [s.path for s in stats] == ["0", "1"]
  for site, values in zip(stats, seen):
    assert site.size == 2 * values.size
    for t in (0.0, 0.05):
      assert site.fraction_below[t] == np.count_nonzero(np.abs(values) <= t) / values.size
  assert stats[0].fraction_below[0.0] > 0.3 and stats[1].fraction_below[0.0] == 0.0
  assert blocks[0].activation is jax.nn.relu  # restored
