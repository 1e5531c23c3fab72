"""experiments/scaling/bench.py's trace reading (``per_call_device_time``), collective names,
report and CPU timing, without a GPU."""

import json

import jax
import jax.numpy as jnp
import pytest

from experiments.scaling import bench

US = 1000  # ns


def trace(calls):
  """``profiling.gpu_trace_lines``-shaped events from ``calls``: each a list of (device, start us,
  end us, name), calls 5 ms apart; plus a derived "XLA Ops" line repeating them."""
  lines: dict = {}
  for index, call in enumerate(calls):
    offset = index * 5000 * US
    for device, start, end, name in call:
      plane = f"/device:GPU:{device}"
      event = (offset + start * US, offset + end * US, name)
      lines.setdefault((plane, "Stream #13(Compute)"), []).append(event)
      lines.setdefault((plane, "XLA Ops"), []).append(event)
  return lines


ONE_CALL = [(0, 0, 60, "_spmm_kernel"), (0, 60, 100, "ncclDevKernel_AllGather_RING_LL"),
            (1, 5, 55, "_spmm_kernel"), (1, 55, 100, "ncclDevKernel_AllGather_RING_LL"),
            (1, 100, 110, "wrapped_gather")]


def test_per_call_device_time_reads_busy_collective_and_span_per_device():
  result = bench.per_call_device_time(trace([ONE_CALL] * 3), calls=3, min_gap_ns=1000 * US)
  assert result["devices_traced"] == 2
  assert result["device_busy_us"] == pytest.approx(105)  # GPU 1: 5-110
  assert result["device_collective_us"] == pytest.approx((40 + 45) / 2)
  assert result["call_span_us"] == pytest.approx(110)
  assert result["top_kernels"][0] == ("_spmm_kernel", pytest.approx(110))
  assert "XLA Ops" not in json.dumps(result)


def test_per_call_device_time_takes_the_median_call_and_counts_overlaps_once():
  calls = [[(0, 0, 100, "a"), (0, 50, 120, "b")], [(0, 0, 10, "a")], [(0, 0, 300, "a")]]
  result = bench.per_call_device_time(trace(calls), calls=3, min_gap_ns=1000 * US)
  assert result["device_busy_us"] == pytest.approx(120)


def test_per_call_device_time_says_when_the_calls_do_not_split():
  result = bench.per_call_device_time(trace([ONE_CALL] * 2), calls=3, min_gap_ns=1000 * US)
  assert "device_time_error" in result and "2 calls" in result["device_time_error"]


@pytest.mark.parametrize("name, collective", [
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", True),
    ("ncclDevKernel_AllGather_RING_LL", True), ("psum_7_0_fusion_1", True),
    ("all-reduce-start", True), ("_spmm_kernel", False), ("wrapped_gather", False),
    ("loop_select_fusion", False), ("input_reduce_fusion", False)])
def test_collective_kernels_are_told_by_name(name, collective):
  assert bool(bench.COLLECTIVE_KERNEL.search(name)) == collective


def test_device_time_is_empty_off_the_gpu():
  if jax.devices()[0].platform == "gpu":
    pytest.skip("a GPU is visible")
  assert bench.device_time(jnp.sin, jnp.ones(3)) == {}


def test_time_us_on_the_cpu_waits_for_each_call():
  calls = []

  def fn(x):
    calls.append(1)
    return x + 1

  result = bench.time_us(fn, jnp.ones(4), min_sample_s=0.0, repeats=3)
  assert result["inner"] == 1 and result["repeats"] == 3 and result["median_us"] > 0
  assert len(calls) == 1 + 3  # the warm-up, then three one-call samples


def test_report_shows_device_columns(tmp_path):
  base = {"op": "spmm", "shape": [8, 8], "n": 4, "split": "rows", "status": "ok",
          "device_count": 2, "device_kind": "test", "platform": "gpu", "jax": "0", "date": "d",
          "commit": "c", "grid": "quick", "max_rel_error_vs_single_device": 0.0, "balance": 1.0}
  records = [dict(base, devices=1, median_us=100.0, device_busy_us=90.0,
                  device_collective_us=0.0, call_span_us=95.0),
             dict(base, devices=2, median_us=80.0, communication_share=0.25,
                  device_busy_us=60.0, device_collective_us=15.0, call_span_us=70.0)]
  path = tmp_path / "results.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
  bench.write_report(path)
  rows = (tmp_path / "table.md").read_text().splitlines()
  assert ("| spmm | 8x8 N=4 | rows | 2 | 0.080 | 1.25 | 25% | 0.060 | 25% | 0.070 | 1.36 |"
          in rows[-1])
