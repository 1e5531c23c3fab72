"""experiments/kernel_time.py: device activity split into calls, busy time as the union of
intervals, the backend fallback, and the harness's kernel_* fields (with a scripted tracer: CI
has no GPU to trace)."""

import dataclasses
import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import grid, kernel_time, lines, machine, roofline, runner, timing  # noqa: E402

GAP_NS = 2_000_000
_MEASURE = kernel_time.measure


def _calls(per_call, start=1_000):
  """Intervals of calls 4 ms apart; ``per_call`` lists each call's (offset ns, length ns)."""
  intervals = []
  for index, activities in enumerate(per_call):
    base = start + index * 4_000_000
    intervals += [(base + offset, base + offset + length, f"k{j}")
                  for j, (offset, length) in enumerate(activities)]
  return intervals


def test_split_calls_groups_by_idle_gaps_and_keeps_overlapping_streams_together():
  per_call = [[(0, 5_000), (6_000, 3_000)], [(0, 10_000), (2_000, 1_000)], [(0, 7_000)]]
  intervals = _calls(per_call)
  groups = kernel_time.split_calls(intervals[::-1], GAP_NS // 2)  # any order in
  assert [len(group) for group in groups] == [2, 2, 1]
  # A long activity hides a short one that starts after the first ends on another stream.
  assert len(kernel_time.split_calls([(0, 5_000_000, "a"), (1_000, 2_000, "b"),
                                      (4_900_000, 5_100_000, "c")], GAP_NS // 2)) == 1


def test_busy_is_the_union_of_intervals():
  assert kernel_time.busy_ns([(0, 10, "a"), (5, 20, "b"), (30, 35, "c"), (31, 32, "d")]) == 25
  assert kernel_time.busy_ns([(0, 10, "a")]) == 10


def test_summarize_statistics_over_calls():
  per_call = [[(0, 4_000), (5_000, 2_000)], [(0, 6_000)], [(0, 9_000)]]
  groups = kernel_time.split_calls(_calls(per_call), GAP_NS // 2)
  measured = kernel_time.summarize(groups, "scripted")
  assert measured.median_us == pytest.approx(6.0)
  assert measured.span_median_us == pytest.approx(7.0)  # 7, 6, 9 us
  assert measured.activities_per_call == pytest.approx(4 / 3)
  assert measured.calls == 3 and measured.top[0][0] == "k0"
  fields = measured.record_fields()
  assert fields["kernel_median_us"] == measured.median_us and fields["kernel_backend"] == "scripted"


class _FakeTimer(timing.Timer):
  """Counts launches and synchronisations."""

  def __init__(self):
    self.launched, self.synced = [], 0

  def launch(self, index=0):
    self.launched.append(index)
    return index

  def synchronize(self, handle):
    self.synced += 1


def _tracer(us_per_call, calls_seen=None):
  """A tracer that runs the calls and reports the first ``calls_seen`` (all if None) of them,
  taking ``us_per_call`` each."""
  def trace(run):
    run()
    return _calls([[(0, int(us * 1e3))] for us in us_per_call[:calls_seen]])
  return trace


def test_measure_uses_the_first_backend_that_finds_every_call(monkeypatch):
  times = [5.0, 6.0, 7.0, 8.0, 9.0]
  monkeypatch.setitem(kernel_time.TRACERS, "short", _tracer(times, calls_seen=3))
  monkeypatch.setitem(kernel_time.TRACERS, "full", _tracer(times))
  timer = _FakeTimer()
  measured = kernel_time.measure(timer, calls=5, gap_s=0.0001, warmup=2,
                                 backends=("short", "full"))
  assert measured.backend == "full" and measured.median_us == pytest.approx(7.0)
  # Warm-up, then each backend's traced calls, each operand copy in turn.
  assert timer.launched == [0, 1] + [0, 1, 2, 3, 4] * 2 and timer.synced == 12
  with pytest.raises(RuntimeError, match="expected 5 calls; short: 3 groups"):
    kernel_time.measure(_FakeTimer(), calls=5, gap_s=0.0001, backends=("short",))
  with pytest.raises(ValueError, match="calls must be >= 1"):
    kernel_time.measure(_FakeTimer(), calls=0)


def test_as_median_makes_kernel_time_the_median_and_keeps_the_wall_clock(monkeypatch):
  monkeypatch.setitem(kernel_time.TRACERS, "jax-profiler", _tracer([4.0] * 15))
  monkeypatch.setattr(kernel_time, "measure",  # short gaps: a fast test
                      lambda timer, calls: _MEASURE(timer, calls=calls, gap_s=1e-4))
  fields = kernel_time.as_median({"median_us": 9.5, "p10_us": 9.0}, _FakeTimer())
  assert fields["median_us"] == pytest.approx(4.0) and fields["wall_median_us"] == 9.5
  assert fields["kernel_median_us"] == pytest.approx(4.0) and fields["p10_us"] == 9.0


def test_calls_for_bounds_the_trace():
  assert kernel_time.calls_for(10.0) == 15
  assert kernel_time.calls_for(200_000.0) == 5
  assert kernel_time.calls_for(50_000.0) == 10


def test_jax_timers_launch_one_op_without_the_loop():
  rng = np.random.default_rng()
  sets = [(jnp.asarray(rng.standard_normal((4, 3)), jnp.float32),) for _ in range(2)]
  timer = timing.JaxLoopTimer(lambda x: 2 * x, sets)
  for index in range(2):
    out = timer.launch(index)
    timer.synchronize(out)
    np.testing.assert_allclose(np.asarray(out), 2 * np.asarray(sets[index][0]), rtol=1e-6)
  host = timing.HostTimer([lambda: 1, lambda: 2])
  assert [host.launch(i) for i in range(3)] == [1, 2, 1]


def test_harness_records_kernel_fields_or_the_reason_there_are_none(monkeypatch):
  case = grid.Case("spmm", "csr", "uniform/64x64", 0.9, 8, "float32")
  fixed = roofline.Roofline(bandwidth_gbs=10.0, matmul_gflops={"float32": 100.0},
                            details={"fixed": "by the test"})
  settings = runner.RunSettings(machine.detect(), fixed,
                                timing.TimingConfig(repeats=3, max_total_s=0.05),
                                kernel_time=True)
  monkeypatch.setitem(kernel_time.TRACERS, "jax-profiler", _tracer([4.0] * 15))
  monkeypatch.setitem(kernel_time.TRACERS, "torch-profiler", _tracer([], calls_seen=0))
  real_measure = kernel_time.measure
  monkeypatch.setattr(kernel_time, "measure",  # short gaps: a fast test
                      lambda timer, calls: real_measure(timer, calls=calls, gap_s=0.0001))
  (record,) = runner.run_cases([case], [lines.DenseLine("float32")], settings)
  assert record["status"] == "ok" and record["kernel_median_us"] == pytest.approx(4.0)
  assert record["kernel_roofline_fraction"] == pytest.approx(record["floor_us"] / 4.0)
  monkeypatch.setitem(kernel_time.TRACERS, "jax-profiler", _tracer([4.0], calls_seen=1))
  (record,) = runner.run_cases([case], [lines.DenseLine("float32")], settings)
  assert record["status"] == "ok" and "kernel_median_us" not in record
  assert "expected" in record["kernel_error"]
  (record,) = runner.run_cases([case], [lines.DenseLine("float32")],
                               dataclasses.replace(settings, kernel_time=False))
  assert not any(key.startswith("kernel_") for key in record)


def test_one_op_programs_of_one_function_are_traced_per_timer(monkeypatch):
  # What a call lowers to can depend on the environment at trace time (JSPARSE_CSR_SPMM_PATH):
  # a second timer of the same function must not reuse the first one's program.
  def fn(x):
    return x * float(os.environ["KERNEL_TIME_TEST_FACTOR"])
  x = jnp.ones((3,), jnp.float32)
  outs = []
  for factor in ("2", "3"):
    monkeypatch.setenv("KERNEL_TIME_TEST_FACTOR", factor)
    timer = timing.JaxLoopTimer(fn, [(x,)])
    outs.append(float(timer.launch()[0]))
  assert outs == [2.0, 3.0]


FAKE_LINES = {
    ("/device:GPU:0", "Stream #14(Compute)"): [(0, 5_000, "k"), (10_000, 12_000, "sum")],
    ("/device:GPU:0", "Stream #20(MemcpyD2H)"): [(13_000, 14_000, "MemcpyD2H")],
    ("/device:GPU:0", "XLA Ops"): [(0, 5_000, "k"), (10_000, 12_000, "sum")],
}


def test_one_trace_reader_serves_the_loop_profile_and_kernel_time(monkeypatch):
  from experiments import profiling
  ran = []

  def fake_trace(run, trace_dir=None):
    run()
    ran.append(trace_dir)
    return FAKE_LINES
  monkeypatch.setattr(profiling, "gpu_trace_lines", fake_trace)
  # kernel_time: every stream line, not the derived "XLA Ops" line that repeats them.
  assert sorted(kernel_time.jax_trace(lambda: None)) == [
      (0, 5_000, "k"), (10_000, 12_000, "sum"), (13_000, 14_000, "MemcpyD2H")]

  class _Loop:
    def run_once(self):
      ran.append("warm-up")

    def run(self, iterations):
      ran.append(iterations)
  profile = profiling.loop_profile(_Loop(), pathlib.Path("/tmp/unused"), iterations=3)
  # loop_profile: the compute streams' kernels only; every line's total.
  assert profile["busy_us"] == 7.0 and profile["span_us"] == 12.0
  assert profile["kernels"] == [("k", 1, 5.0), ("sum", 1, 2.0)]
  assert profile["per_line_us"]["Stream #20(MemcpyD2H)"] == 1.0
  assert ran[-3:] == ["warm-up", 3, pathlib.Path("/tmp/unused")]


def test_gpu_trace_lines_runs_the_function_under_a_trace():
  from experiments import profiling
  calls = []
  lines = profiling.gpu_trace_lines(lambda: calls.append(jnp.ones(3).block_until_ready()))
  assert len(calls) == 1
  assert all(plane.startswith("/device:GPU") for plane, _ in lines)  # none on a CPU-only host
