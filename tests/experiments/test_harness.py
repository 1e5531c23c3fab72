"""The benchmark harness end to end on a tiny grid: run -> results.jsonl, table.md, plots; and a
line with a wrong result is reported "wrong" and not timed."""

import dataclasses
import importlib.util
import json

import numpy as np
import pytest

from experiments import grid, lines, machine, roofline, run, runner, timing  # noqa: E402

TINY = ["--sources", "uniform/64x64", "--ops", "spmm", "--formats", "csr", "--sparsities",
        "0.9", "--n", "8", "--dtypes", "float32", "--no-sanity"]
FIXED_ROOFLINE = roofline.Roofline(bandwidth_gbs=10.0,
                                   matmul_gflops={"float32": 100.0, "bfloat16": 200.0},
                                   details={"fixed": "by the test"})


@pytest.fixture(autouse=True)
def fixed_roofline(monkeypatch):
  """Skips the roofline measurement (seconds of big copies and matmuls)."""
  monkeypatch.setattr(roofline, "measure", lambda on_gpu: FIXED_ROOFLINE)


def test_run_writes_results_table_and_plots(tmp_path):
  records = run.main([*TINY, "--lines", "dense-fp32", "jsparse-reference", "--out",
                      str(tmp_path)])
  assert [r["line"] for r in records] == ["dense-fp32", "jsparse-reference"]
  assert all(r["status"] == "ok" for r in records), records
  written = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
  assert len(written) == 2
  for record in written:
    assert record["p10_us"] <= record["median_us"] <= record["p90_us"]
    assert record["error_rel"] < 1e-5 and record["shape"] == [64, 64] and record["n"] == 8
    assert record["floor_us"] > 0 and record["roofline_fraction"] > 0
    assert record["versions"]["jax"] and record["date"] and record["platform"]
  assert written[0]["speedup_vs_dense-fp32"] == pytest.approx(1.0)
  table = (tmp_path / "table.md").read_text()
  assert "jsparse-reference" in table and "spmm csr uniform/64x64" in table
  assert json.loads((tmp_path / "run.json").read_text())["roofline"]["bandwidth_gbs"] == 10.0
  if importlib.util.find_spec("matplotlib") is not None:
    assert {"throughput_vs_sparsity_N8.png", "roofline_fraction.png",
            "speedup_over_dense-fp32.png"} <= {p.name for p in tmp_path.glob("*.png")}


class DoublingLine(lines.JsparseLine):
  """The reference line with its output doubled: a deliberately wrong kernel."""

  def __init__(self):
    super().__init__("reference")
    self.name = "wrong-on-purpose"

  def prepare(self, problem, copies, machine):
    prepared = super().prepare(problem, copies, machine)
    to_dense = prepared.to_dense
    prepared.to_dense = lambda out: 2 * to_dense(out)
    return prepared


class RaisingLine(lines.JsparseLine):
  def __init__(self):
    super().__init__("reference")
    self.name = "raises-on-purpose"

  def prepare(self, problem, copies, machine):
    raise RuntimeError("kernel exploded")


def test_wrong_line_is_reported_and_not_timed():
  case = grid.Case("spmm", "csr", "uniform/64x64", 0.9, 8, "float32")
  settings = runner.RunSettings(machine.detect(), FIXED_ROOFLINE,
                                timing.TimingConfig(repeats=3, max_total_s=0.1))
  wrong, raising = runner.run_cases([case], [DoublingLine(), RaisingLine()], settings)
  assert wrong["status"] == "wrong" and "relative error" in wrong["message"]
  assert np.isclose(wrong["error_rel"], 1.0) and "median_us" not in wrong
  assert raising["status"] == "error" and "kernel exploded" in raising["message"]


class TerminatedLine(lines.JsparseLine):
  """Stands for a time limit arriving (SIGTERM) while this line runs."""

  def __init__(self):
    super().__init__("reference")
    self.name = "terminated-here"

  def prepare(self, problem, copies, machine):
    raise run.Terminated("signal 15")


def test_interrupted_run_keeps_the_finished_lines(tmp_path, monkeypatch):
  everything = lines.all_lines()
  monkeypatch.setattr(lines, "all_lines", lambda: [*everything, TerminatedLine()])
  records = run.main([*TINY, "--sparsities", "0.9", "0.5", "--lines", "dense-fp32",
                      "terminated-here", "--out", str(tmp_path)])
  # The first case's first line finished; the run stopped inside its second line.
  assert [(r["line"], r["status"]) for r in records] == [("dense-fp32", "ok")]
  written = (tmp_path / "results.jsonl").read_text().splitlines()
  assert len(written) == 1
  assert json.loads((tmp_path / "run.json").read_text())["interrupted"] == "Terminated"


def test_nm_ratio_and_grid_axes():
  assert grid.nm_ratio(0.5) == (2, 4) and grid.nm_ratio(0.9) == (1, 8)
  assert grid.nm_ratio(0.99) is None
  cases = grid.QUICK.cases()
  assert {c.n for c in cases if c.op == "spmv"} == {1}
  assert all(c.source.startswith("dlmc/") for c in cases)
  assert not [c for c in grid.FULL.cases() if c.source.startswith("dlmc/") and c.sparsity == 0.99]


class SlowLine(lines.JsparseLine):
  """The reference line whose single calls report ``seconds`` (first call, warm call)."""

  def __init__(self, seconds):
    super().__init__("reference")
    self.name = "slow-on-purpose"
    self.seconds = list(seconds)

  def prepare(self, problem, copies, machine):
    prepared = super().prepare(problem, copies, machine)
    run_single, seconds = prepared.timer.run_single, self.seconds

    def slow_single():
      out, _ = run_single()
      return out, seconds.pop(0)
    prepared.timer.run_single = slow_single
    prepared.timer.measure = lambda config: pytest.fail("a too-slow op must not be measured")
    return prepared


def test_ops_slower_than_max_op_s_are_timed_once_or_skipped():
  case = grid.Case("spmm", "csr", "uniform/64x64", 0.9, 8, "float32")
  settings = runner.RunSettings(machine.detect(), FIXED_ROOFLINE,
                                timing.TimingConfig(repeats=3, max_total_s=0.1, max_op_s=0.5))
  # First call 2 s (compiling), warm call 0.8 s: checked and timed by that one warm call.
  (once,) = runner.run_cases([case], [SlowLine([2.0, 0.8])], settings)
  assert once["status"] == "ok" and once["median_us"] == pytest.approx(8e5)
  assert once["repeats"] == 1 and "one call" in once["timing_method"]
  assert once["error_rel"] < 1e-5
  # First call over 10x the limit: checked, recorded as skipped, not timed.
  (skipped,) = runner.run_cases([case], [SlowLine([6.0])], settings)
  assert skipped["status"] == "skipped" and "too slow to time" in skipped["message"]
  assert skipped["error_rel"] < 1e-5 and "median_us" not in skipped
  # A fast op under the same limit is measured as usual.
  (fast,) = runner.run_cases([case], [lines.JsparseLine("reference")], settings)
  assert fast["status"] == "ok" and fast["repeats"] >= 3


class ScriptedLine(lines.JsparseLine):
  """The reference line whose successive measurements report the given medians (us)."""

  def __init__(self, name, medians):
    super().__init__("reference")
    self.name, self.medians = name, list(medians)

  def prepare(self, problem, copies, machine):
    prepared = super().prepare(problem, copies, machine)
    prepared.timer.measure = lambda config: _pop(self.medians)
    return prepared


def _pop(medians):
  value = medians.pop(0)
  return timing.Measurement(value, value, value, 3, 1, 1, "scripted", foreign_cpu=0.0)


def test_rounds_interleave_the_lines_of_a_case_and_keep_each_lines_lowest_median():
  case = grid.Case("spmm", "csr", "uniform/64x64", 0.9, 8, "float32")
  settings = runner.RunSettings(machine.detect(), FIXED_ROOFLINE,
                                timing.TimingConfig(repeats=3, max_total_s=0.1), rounds=3)
  order = []
  first, second = ScriptedLine("a", [50.0, 30.0, 40.0]), ScriptedLine("b", [20.0, 25.0, 10.0])
  records = runner.run_cases([case], [first, second], settings,
                             progress=lambda case, line: order.append(line))
  assert order == ["a", "b", "a", "b", "a", "b"]
  assert [r["median_us"] for r in records] == [30.0, 10.0]
  assert [r["round_medians_us"] for r in records] == [[50.0, 30.0, 40.0], [20.0, 25.0, 10.0]]
  assert records[0]["gflops"] == pytest.approx(records[0]["flops"] / 30e3)
  # One round (the default): the first measurement stands, no round list.
  (single,) = runner.run_cases([case], [ScriptedLine("c", [70.0, 5.0])],
                               dataclasses.replace(settings, rounds=1))
  assert single["median_us"] == 70.0 and "round_medians_us" not in single


def test_shared_lines_are_measured_in_every_case_when_there_are_rounds():
  cases = [grid.Case("spmm", "csr", "uniform/64x64", sparsity, 8, "float32")
           for sparsity in (0.9, 0.8)]
  settings = runner.RunSettings(machine.detect(), FIXED_ROOFLINE,
                                timing.TimingConfig(repeats=3, max_total_s=0.05))
  dense = lines.DenseLine("float32")
  once = runner.run_cases(cases, [dense], settings)
  assert "shared_from" not in once[0] and once[1]["shared_from"] == once[0]["case"]
  each = runner.run_cases(cases, [dense], dataclasses.replace(settings, rounds=2))
  assert all("shared_from" not in r and len(r["round_medians_us"]) == 2 for r in each)


def test_min_sample_ms_sets_every_timers_sample_length(tmp_path):
  run.main([*TINY, "--lines", "dense-fp32", "--min-sample-ms", "7", "--out", str(tmp_path)])
  assert json.loads((tmp_path / "run.json").read_text())["timing"]["min_sample_s"] == 0.007

  with pytest.raises(SystemExit):
    run.parse_args([*TINY, "--min-sample-ms", "0"])
