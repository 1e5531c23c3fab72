"""GPU kernel time of a timed JAX loop, from a ``jax.profiler`` trace (no nsys needed).

``loop_profile`` traces ``JaxLoopTimer.run`` and sums the GPU kernels on the compute streams by
name, read back with ``jax.profiler.ProfileData``: what the device ran for the timed ops, to set
beside the timer's wall-clock figure (which also holds the loop's own work and launch gaps).
"""

from __future__ import annotations

import collections
import pathlib

import jax

from experiments.timing import JaxLoopTimer


def loop_profile(timer: JaxLoopTimer, trace_dir: pathlib.Path, iterations: int = 4,
                 top: int = 40) -> dict:
  """Traces ``timer.run(iterations)`` (after one untraced run) on the GPU.

  Returns:
    {"kernels": [(name, count, summed us)] longest first (``top``), "busy_us" (all kernels on
    compute streams), "span_us" (first kernel start to last kernel end), "iterations",
    "per_line_us" (summed kernel time by trace line, e.g. per stream)}.
  """
  timer.run_once()
  with jax.profiler.trace(str(trace_dir)):
    timer.run(iterations)
  path = max(pathlib.Path(trace_dir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
  profile = jax.profiler.ProfileData.from_file(str(path))
  totals, counts, starts, ends = collections.Counter(), collections.Counter(), [], []
  per_line = collections.Counter()
  for plane in profile.planes:
    if not plane.name.startswith("/device:GPU"):
      continue
    for line in plane.lines:
      per_line[line.name] += sum(event.duration_ns for event in line.events) / 1e3
      if "compute" not in line.name.lower():  # streams named "Stream #N(...,Compute)"
        continue
      for event in line.events:
        totals[event.name] += event.duration_ns / 1e3
        counts[event.name] += 1
        starts.append(event.start_ns)
        ends.append(event.end_ns)
  kernels = [(name, counts[name], round(us, 2)) for name, us in totals.most_common(top)]
  return {"kernels": kernels, "busy_us": round(sum(totals.values()), 2),
          "span_us": round((max(ends) - min(starts)) / 1e3, 2) if starts else None,
          "iterations": iterations,
          "per_line_us": {name: round(us, 2) for name, us in per_line.items()}}
