"""experiments/timing.py: the in-loop timer keeps every unrolled call, and agrees with per-call
timing on an op whose cost dwarfs dispatch."""

import importlib.util
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if importlib.util.find_spec("experiments") is None:  # `python -P -m pytest`: root not on sys.path
  sys.path.append(str(REPO_ROOT))

from experiments import timing  # noqa: E402

import jsparse  # noqa: E402


def test_tied_operands_keep_their_values_and_depend_on_the_scalar():
  rng = np.random.default_rng()
  matrix = jsparse.CSR.fromdense(rng.standard_normal((6, 5)).astype(np.float32)
                                 * (rng.random((6, 5)) < 0.5))
  dense = jnp.asarray(rng.standard_normal((5, 3)).astype(np.float32))
  tied = timing._tied((matrix, dense), jnp.float32(7.0))
  for before, after in zip(jax.tree_util.tree_leaves((matrix, dense)),
                           jax.tree_util.tree_leaves(tied)):
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
  # The smallest leaf (the row offsets) is a function of the scalar.
  jaxpr = jax.make_jaxpr(lambda s: timing._tied((matrix, dense), s))(jnp.float32(1.0))
  assert any(eqn.primitive.name == "mul" for eqn in jaxpr.jaxpr.eqns)


def test_loop_timer_matches_per_call_timing_of_the_cpu_kernel():
  # jaxlib 0.10.2 merged the 8 unrolled calls of the C++ custom call into one (the loop timer
  # read 1.6 ms for a 12 ms SpMM); the tie to the running scalar keeps them apart.
  rng = np.random.default_rng()
  dense_a = rng.standard_normal((1024, 1024)).astype(np.float32)
  dense_a *= rng.random((1024, 1024)) < 0.2
  matrix = jsparse.CSR.fromdense(dense_a)
  b = jnp.asarray(rng.standard_normal((1024, 64)).astype(np.float32))
  spmm = lambda a, b: jsparse.spmm(a, b, impl="ffi")  # noqa: E731
  config = timing.TimingConfig(repeats=5, min_repeats=5, min_sample_s=0.02, max_total_s=1.0)
  looped = timing.JaxLoopTimer(spmm, [(matrix, b)]).measure(config).median_us
  per_call = timing.JaxCallTimer(spmm, (matrix, b)).measure(config).median_us
  # Per call adds dispatch (tens of us); merged calls would read several times faster.
  assert looped > 0.5 * per_call, (looped, per_call)


class _CountingTimer(timing.Timer):
  """A fake timer whose every op takes ``op_s`` seconds; counts the samples taken."""

  method = "fake"

  def __init__(self, op_s: float):
    self.op_s, self.samples = op_s, 0

  def measure(self, config: timing.TimingConfig) -> timing.Measurement:
    def sample(inner: int) -> float:
      self.samples += 1
      return self.op_s * inner
    return self._measure_with(sample, config, 1)


def test_an_op_slower_than_max_op_s_is_timed_by_one_sample():
  config = timing.TimingConfig(repeats=5, min_repeats=3, max_op_s=0.5)
  slow = _CountingTimer(2.0)
  measured = slow.measure(config)
  assert slow.samples == 1
  assert measured.repeats == 1 and measured.median_us == 2e6
  assert "one sample" in measured.method
  fast = _CountingTimer(0.01)
  measured = fast.measure(config)
  assert fast.samples > 1 and measured.repeats >= 3 and measured.method == "fake"


def test_with_operands_reuses_the_compiled_timer_and_refuses_other_shapes():
  rng = np.random.default_rng()
  a, b = (jnp.asarray(rng.standard_normal((4, 3)), jnp.float32) for _ in range(2))
  for timer in (timing.JaxLoopTimer(jnp.negative, [(a,)]), timing.JaxCallTimer(jnp.negative, (a,))):
    moved = timer.with_operands([(b,)])
    np.testing.assert_array_equal(np.asarray(moved.run_once()), -np.asarray(b))
    np.testing.assert_array_equal(np.asarray(timer.run_once()), -np.asarray(a))
    with pytest.raises(ValueError, match="shape or dtype"):
      timer.with_operands([(jnp.zeros((4, 4), jnp.float32),)])
    with pytest.raises(ValueError, match="shape or dtype"):
      timer.with_operands([(a.astype(jnp.float16),)])
