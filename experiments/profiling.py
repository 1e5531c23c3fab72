"""GPU kernel time from ``jax.profiler`` traces (no nsys needed).

``gpu_trace_lines`` runs a function under a trace and returns the GPU planes' events by line
(``experiments.kernel_time`` reads every framework's kernels from it). ``loop_profile`` traces ``JaxLoopTimer.run`` and sums the GPU kernels on the compute streams by
name, read back with ``jax.profiler.ProfileData``: what the device ran for the timed ops, to set
beside the timer's wall-clock figure (which also holds the loop's own work and launch gaps).
"""

from __future__ import annotations

import collections
import pathlib
import tempfile
from typing import Callable

import jax

from experiments.timing import JaxLoopTimer

# One event of a device trace: (start ns, end ns, name).
Event = tuple[int, int, str]


def gpu_trace_lines(run: Callable[[], None],
                    trace_dir: pathlib.Path | None = None) -> dict[tuple[str, str], list[Event]]:
  """``run()`` under ``jax.profiler.trace`` (into ``trace_dir``, a temporary folder when None);
  the events of every line of the GPU planes, keyed by (plane name, line name). Stream lines are
  named "Stream #N(...)" (compute streams "...Compute)"); XLA's CUPTI tracer records every
  kernel of the process there, whoever launched it. Derived lines ("XLA Ops", "XLA Modules")
  repeat those events."""
  if trace_dir is None:
    with tempfile.TemporaryDirectory() as temporary:
      return gpu_trace_lines(run, pathlib.Path(temporary))
  with jax.profiler.trace(str(trace_dir)):
    run()
  path = max(pathlib.Path(trace_dir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
  profile = jax.profiler.ProfileData.from_file(str(path))
  return {(plane.name, line.name): [(event.start_ns, event.start_ns + event.duration_ns,
                                     event.name) for event in line.events]
          for plane in profile.planes if plane.name.startswith("/device:GPU")
          for line in plane.lines}


def loop_profile(timer: JaxLoopTimer, trace_dir: pathlib.Path, iterations: int = 4,
                 top: int = 40) -> dict:
  """Traces ``timer.run(iterations)`` (after one untraced run) on the GPU.

  Returns:
    {"kernels": [(name, count, summed us)] longest first (``top``), "busy_us" (all kernels on
    compute streams), "span_us" (first kernel start to last kernel end), "iterations",
    "per_line_us" (summed kernel time by trace line, e.g. per stream)}.
  """
  timer.run_once()
  lines = gpu_trace_lines(lambda: timer.run(iterations), trace_dir)
  totals, counts, starts, ends = collections.Counter(), collections.Counter(), [], []
  per_line = collections.Counter()
  for (_, line), events in lines.items():
    per_line[line] += sum(end - start for start, end, _ in events) / 1e3
    if "compute" not in line.lower():  # streams named "Stream #N(...,Compute)"
      continue
    for start, end, name in events:
      totals[name] += (end - start) / 1e3
      counts[name] += 1
      starts.append(start)
      ends.append(end)
  kernels = [(name, counts[name], round(us, 2)) for name, us in totals.most_common(top)]
  return {"kernels": kernels, "busy_us": round(sum(totals.values()), 2),
          "span_us": round((max(ends) - min(starts)) / 1e3, 2) if starts else None,
          "iterations": iterations,
          "per_line_us": {name: round(us, 2) for name, us in per_line.items()}}
