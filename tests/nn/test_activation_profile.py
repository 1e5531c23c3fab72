"""The activation profiler counts what the activations actually produced."""

import jax
import numpy as np
from flax import nnx

from jsparse.nn.activation_profile import profile_activations


class TwoSites(nnx.Module):
  """Two MLP stages, each with an ``activation`` attribute as SparseTransformerBlock has."""

  def __init__(self, activation, rngs):
    self.linear = nnx.Linear(6, 32, rngs=rngs)
    self.activation = activation

  def __call__(self, x):
    return self.activation(self.linear(x))


def test_profile_counts_zeros_and_near_zeros_of_each_site():
  sites = nnx.List([TwoSites(jax.nn.relu, nnx.Rngs(0)), TwoSites(jax.nn.gelu, nnx.Rngs(1))])
  x = np.random.default_rng(0).standard_normal((5, 6))
  outputs = []

  def run(sites):
    for _ in range(2):
      outputs.append([np.asarray(site(x)) for site in sites])

  stats = profile_activations(sites, run, thresholds=(0.0, 0.05))
  assert [s.path for s in stats] == ["0", "1"]
  for index, site in enumerate(stats):
    values = np.concatenate([run_outputs[index].ravel() for run_outputs in outputs])
    assert site.size == values.size == 2 * 5 * 32
    for t in (0.0, 0.05):
      assert site.fraction_below[t] == np.count_nonzero(np.abs(values) <= t) / values.size
  assert stats[0].fraction_below[0.0] > 0.3 and stats[1].fraction_below[0.0] == 0.0
  assert sites[0].activation is jax.nn.relu  # restored
