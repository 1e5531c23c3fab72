"""experiments/timing.py: the in-loop timer keeps every unrolled call, and agrees with per-call
timing on an op whose cost dwarfs dispatch."""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_cpu_usage_counts_this_process_and_others_apart():
  if timing.CpuUsage().own is None:
    pytest.skip("no /proc")
  before = timing.CpuUsage()
  end = time.perf_counter() + 0.3
  while time.perf_counter() < end:  # this thread busy: ~1 core of its own
    pass
  after = timing.CpuUsage()
  assert 0.6 < after.own_cores(before) < 1.3
  assert after.foreign_cores(before) >= 0
  # Others' share is the machine's busy time less this process's (snapshots built by hand).
  ticks = os.sysconf("SC_CLK_TCK")
  start, stop = timing.CpuUsage(), timing.CpuUsage()
  start.wall, start.machine, start.own = 0.0, 1000, 500
  stop.wall, stop.machine, stop.own = 2.0, 1000 + 3 * ticks, 500 + 2 * ticks
  assert stop.foreign_cores(start) == pytest.approx(0.5)
  assert stop.own_cores(start) == pytest.approx(1.0)


def test_a_measurement_under_foreign_load_is_retaken_and_the_quietest_kept(monkeypatch):
  loads = iter([1.5, 0.9, 0.1])
  monkeypatch.setattr(timing.CpuUsage, "foreign_cores", lambda self, since: next(loads))
  monkeypatch.setattr(timing, "wait_for_idle_process", lambda: 0.0)
  config = timing.TimingConfig(repeats=3, min_repeats=3, max_foreign_cpu=0.25,
                               quiet_attempts=4, quiet_pause_s=0.0)
  timer = _CountingTimer(0.01)
  measured = timer.measure(config)
  assert measured.attempts == 3 and measured.foreign_cpu == 0.1
  # Without a limit the first measurement stands, its load recorded.
  loads = iter([1.5])
  measured = _CountingTimer(0.01).measure(timing.TimingConfig(repeats=3, min_repeats=3))
  assert measured.attempts == 1 and measured.foreign_cpu == 1.5


def test_a_busy_measurement_keeps_the_least_loaded_attempt(monkeypatch):
  loads = iter([0.9, 0.5, 0.7])
  monkeypatch.setattr(timing.CpuUsage, "foreign_cores", lambda self, since: next(loads))
  monkeypatch.setattr(timing, "wait_for_idle_process", lambda: 0.0)
  config = timing.TimingConfig(repeats=3, min_repeats=3, max_foreign_cpu=0.25,
                               quiet_attempts=3, quiet_pause_s=0.0)
  measured = _CountingTimer(0.01).measure(config)
  assert measured.attempts == 3 and measured.foreign_cpu == 0.5


def test_loop_timer_runs_a_given_number_of_iterations():
  # run(n) runs the compiled loop n times (unroll ops per copy each) and returns the last output.
  rng = np.random.default_rng()
  a = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)
  calls = []
  timer = timing.JaxLoopTimer(lambda x: jax.debug.callback(lambda: calls.append(1)) or -x,
                              [(a,)], unroll=2)
  np.testing.assert_array_equal(np.asarray(timer.run(3)), -np.asarray(a))
  jax.effects_barrier()
  assert len(calls) == 3 * timer.ops_per_iteration == 3 * 2
  two_copies = timing.JaxLoopTimer(lambda x: -x, [(a,), (a + 1,)], unroll=2)
  assert two_copies.ops_per_iteration == 4
