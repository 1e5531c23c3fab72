"""How much of a small op's harness time is its own GPU kernels? For harness cases (the DLMC
subset's small matrices, and 4096x4096 as a control), each JAX line is timed by its
``JaxLoopTimer`` as ``experiments/run.py`` times it, then the same loop is traced
(``experiments.profiling.loop_profile``) and its kernels summed per op. A trivial op
(``x + 1`` on one element) gives the loop's own floor. Sputnik's and cuSPARSE's lines are timed
beside them by their own timers (CUDA events), as in the harness.

    python3 -P experiments/gpu_checks/loop_overhead_probe.py OUTDIR [--budget-s 200] [--smoke]

Writes OUTDIR/loop_overhead_probe.json and .md (per case and line: the timer's median, the
kernels' busy time per op, the kernels by name).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax.numpy as jnp  # noqa: E402

from experiments import lines as harness_lines, machine as harness_machine  # noqa: E402
from experiments import problems, profiling, timing  # noqa: E402
from experiments.grid import Case  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402

JAX_LINES = ("jsparse-pallas", "dense-fp32")
OTHER_LINES = {"spmm": ("sputnik", "torch-csr"), "sddmm": ("sputnik-sddmm", "torch-sampled-addmm")}


def plan(smoke: bool) -> list[Case]:
  if smoke:
    return [Case("spmm", "csr", "uniform/64x64", 0.9, 32, "float32")]
  small = "dlmc/magnitude_pruning/512x512#0"
  cases = [Case(op, "csr", small, s, n, "float32") for op in ("spmm", "sddmm")
           for s, n in ((0.98, 32), (0.9, 128), (0.5, 1024))]
  cases += [Case("spmm", "csr", "dlmc/random_pruning/2048x512#0", 0.9, 128, "float32"),
            Case("spmm", "csr", "uniform/4096x4096", 0.9, 128, "float32")]
  return cases


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--budget-s", type=float, default=200.0)
  parser.add_argument("--smoke", action="store_true", help="one tiny case, no trace (CPU)")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  config = timing.TimingConfig(repeats=5, max_total_s=0.2)
  machine = harness_machine.detect()
  by_name = {line.name: line for line in harness_lines.all_lines()}
  start = time.monotonic()
  results = {**bench_common.probe_meta(), "cases": []}

  def profile_of(timer):
    if args.smoke:
      return None
    with tempfile.TemporaryDirectory() as trace_dir:
      profile = profiling.loop_profile(timer, pathlib.Path(trace_dir), iterations=4)
    ops = profile["iterations"] * timer.ops_per_iteration
    return {"busy_us_per_op": round(profile["busy_us"] / ops, 2),
            "span_us_per_op": round(profile["span_us"] / ops, 2) if profile["span_us"] else None,
            "kernels_per_op": [(name, round(count / ops, 2), round(us / ops, 2))
                               for name, count, us in profile["kernels"][:8]]}

  floor = timing.JaxLoopTimer(lambda x: x + 1, [(jnp.ones((1,), jnp.float32),)])
  results["floor"] = {"median_us": floor.measure(config).median_us, **(profile_of(floor) or {})}
  print(json.dumps(results["floor"]), flush=True)
  rows = []
  for case in plan(args.smoke):
    if time.monotonic() - start > args.budget_s:
      break
    problem = problems.build_problem(case)
    entry = {"case": f"{case.op}/{case.source}/s{case.sparsity}/n{case.n}", "lines": {}}
    for name in JAX_LINES + (() if args.smoke else OTHER_LINES[case.op]):
      line = by_name[name]
      if line.available(machine) or line.applies(case, machine):
        continue
      prepared = line.prepare(problem, 1, machine)
      record = {"median_us": prepared.timer.measure(config).median_us,
                "method": prepared.timer.method}
      if isinstance(prepared.timer, timing.JaxLoopTimer):
        record.update(profile_of(prepared.timer) or {})
      entry["lines"][name] = record
      rows.append(f"| {case.op} {case.source} s={case.sparsity} N={case.n} | {name} | "
                  f"{record['median_us']:.1f} | {record.get('busy_us_per_op', '-')} | "
                  f"{record.get('span_us_per_op', '-')} | "
                  f"{'; '.join(f'{k[:40]} x{c} {u}' for k, c, u in record.get('kernels_per_op', []))} |")
      print(rows[-1], flush=True)
    results["cases"].append(entry)
  (args.outdir / "loop_overhead_probe.json").write_text(json.dumps(results, indent=1))
  header = ("| case | line | timer median us | kernels busy us / op | kernel span us / op | "
            "kernels / op (name x count us) |\n|---|---|---|---|---|---|")
  (args.outdir / "loop_overhead_probe.md").write_text(
      f"# JAX loop time vs kernel time\n\n{json.dumps({k: v for k, v in results.items() if k != 'cases'})}\n\n"
      + header + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
