"""Each op's GPU kernel time, measured the same way for every framework (CUPTI traces).

The harness's wall-clock timers differ by framework: JAX lines run in a jitted loop (with a
running-sum kernel and a host synchronisation per iteration, a floor of ~4.7 us an op on an
H100), torch and Sputnik lines are timed with CUDA events around back-to-back calls (each paying
its Python dispatch, which a kernel shorter than it cannot hide). For kernels of 5-30 us the
floors differ by as much as the kernels. This module times every line by one method instead:

- the op runs ``calls`` times, each alone: launched (``Timer.launch``), waited for
  (``Timer.synchronize``), then ``gap_s`` of idle device, all inside one profiler trace;
- the device activity (kernels, memsets, copies, on every stream) is read from the trace and
  split into calls at idle gaps longer than ``gap_s / 2``; the count must equal ``calls``;
- per call: ``busy`` (union of its activity intervals: device time the op occupied) and ``span``
  (first start to last end: busy plus the launch gaps inside the op);
- the median, p10 and p90 of ``busy`` over calls.

A JAX line runs its op as a one-op program (no loop, no running sum). Kernel time excludes what
happens between ops (launch latency, dispatch), which ``median_us`` of the wall-clock timers
keeps; the harness records both.

Traces come from ``jax.profiler`` (XLA's CUPTI tracer, which records every kernel of the
process, whoever launched it); where it finds no calls (a torch build whose CUPTI subscriber
excludes XLA's), from ``torch.profiler``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from experiments import profiling
from experiments.timing import Timer

# (start ns, end ns, name) of one device activity.
Interval = tuple[int, int, str]


@dataclasses.dataclass(frozen=True)
class KernelTime:
  """Per-call device time of one op, in microseconds (see the module docstring)."""

  median_us: float
  p10_us: float
  p90_us: float
  span_median_us: float
  activities_per_call: float
  calls: int
  backend: str
  # (name, activities per call, us per call) of the longest activities, longest first.
  top: tuple[tuple[str, float, float], ...] = ()

  def record_fields(self) -> dict:
    """The fields a harness record holds (prefixed ``kernel_``)."""
    return {"kernel_median_us": self.median_us, "kernel_p10_us": self.p10_us,
            "kernel_p90_us": self.p90_us, "kernel_span_median_us": self.span_median_us,
            "kernel_activities_per_call": self.activities_per_call,
            "kernel_calls": self.calls, "kernel_backend": self.backend,
            "kernel_top": [list(entry) for entry in self.top]}


def split_calls(intervals: Sequence[Interval], min_gap_ns: int) -> list[list[Interval]]:
  """Groups activity intervals into calls: a new call starts where the device has been idle for
  more than ``min_gap_ns`` (after the latest end so far; overlapping streams stay together)."""
  groups: list[list[Interval]] = []
  latest_end = None
  for interval in sorted(intervals):
    if latest_end is None or interval[0] - latest_end > min_gap_ns:
      groups.append([])
      latest_end = interval[1]
    groups[-1].append(interval)
    latest_end = max(latest_end, interval[1])
  return groups


def busy_ns(intervals: Sequence[Interval]) -> int:
  """Length of the union of the intervals (overlaps counted once)."""
  total, covered_to = 0, None
  for start, end, _ in sorted(intervals):
    if covered_to is None or start > covered_to:
      total += end - start
      covered_to = end
    elif end > covered_to:
      total += end - covered_to
      covered_to = end
  return total


def summarize(groups: Sequence[Sequence[Interval]], backend: str, top: int = 4) -> KernelTime:
  """Statistics over calls (one group of intervals each)."""
  busy = np.array([busy_ns(group) for group in groups], dtype=np.float64) / 1e3
  spans = np.array([max(e for _, e, _ in g) - min(s for s, _, _ in g) for g in groups],
                   dtype=np.float64) / 1e3
  by_name: dict[str, list[float]] = {}
  for group in groups:
    for start, end, name in group:
      by_name.setdefault(name, []).append((end - start) / 1e3)
  calls = len(groups)
  longest = sorted(by_name.items(), key=lambda item: -sum(item[1]))[:top]
  return KernelTime(
      median_us=float(np.median(busy)), p10_us=float(np.percentile(busy, 10)),
      p90_us=float(np.percentile(busy, 90)), span_median_us=float(np.median(spans)),
      activities_per_call=sum(len(g) for g in groups) / calls, calls=calls, backend=backend,
      top=tuple((name[:80], round(len(times) / calls, 2), round(sum(times) / calls, 3))
                for name, times in longest))


def jax_trace(run: Callable[[], None]) -> list[Interval]:
  """Device activity of a ``jax.profiler`` trace of ``run()``: every event on a GPU stream line
  (``profiling.gpu_trace_lines``; the derived "XLA Ops" / "XLA Modules" lines repeat them)."""
  return [event for (_, line), events in profiling.gpu_trace_lines(run).items()
          if line.startswith("Stream") for event in events]


def torch_trace(run: Callable[[], None]) -> list[Interval]:
  """Device activity (kernels, memsets, copies) of a ``torch.profiler`` trace of ``run()``."""
  import torch
  from torch.profiler import ProfilerActivity, profile
  with profile(activities=[ProfilerActivity.CUDA]) as prof:
    run()
    torch.cuda.synchronize()
  intervals = []
  for event in prof.profiler.kineto_results.events():
    if event.device_type() == torch.autograd.DeviceType.CUDA:
      start = int(event.start_ns())
      intervals.append((start, start + int(event.duration_ns()), event.name()))
  return intervals


TRACERS: dict[str, Callable[[Callable[[], None]], list[Interval]]] = {
    "jax-profiler": jax_trace, "torch-profiler": torch_trace}


def measure(timer: Timer, calls: int = 15, gap_s: float = 0.002, warmup: int = 2,
            backends: Sequence[str] = ("jax-profiler", "torch-profiler")) -> KernelTime:
  """The op's device time per call (module docstring), by the first backend that finds exactly
  ``calls`` calls in its trace.

  Raises:
    RuntimeError: no backend found ``calls`` calls (the message gives each one's count).
  """
  if calls < 1 or gap_s <= 0:
    raise ValueError(f"measure: calls must be >= 1 and gap_s > 0, got {calls}, {gap_s}")
  for index in range(warmup):
    timer.synchronize(timer.launch(index))

  def run() -> None:
    for index in range(calls):
      timer.synchronize(timer.launch(index))
      time.sleep(gap_s)

  found = []
  for backend in backends:
    try:
      intervals = TRACERS[backend](run)
    except Exception as error:  # a tracer that cannot start here: try the next
      found.append(f"{backend}: {type(error).__name__}: {str(error)[:120]}")
      continue
    groups = split_calls(intervals, int(gap_s * 1e9 / 2))
    if len(groups) == calls:
      return summarize(groups, backend)
    found.append(f"{backend}: {len(groups)} groups of activity")
  raise RuntimeError(f"kernel time: expected {calls} calls; " + "; ".join(found))


def calls_for(op_us: float, budget_s: float = 0.5, most: int = 15, least: int = 5) -> int:
  """Calls to trace for an op of ``op_us`` within about ``budget_s`` (``least`` at the least)."""
  return int(max(least, min(most, budget_s * 1e6 / max(op_us, 1.0))))


def as_median(fields: dict, timer: Timer) -> dict:
  """A line's timing ``fields`` (its wall-clock ``median_us``) with the op's kernel time made
  their ``median_us``: the kernel fields (``kernel_*``, ``calls_for`` the wall median) added and
  the wall-clock median kept as ``wall_median_us``. For check scripts whose ratios and targets
  read ``median_us``."""
  kernel = measure(timer, calls=calls_for(fields["median_us"]))
  fields.update(kernel.record_fields(), wall_median_us=fields["median_us"],
                median_us=kernel.median_us)
  return fields
