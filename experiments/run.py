"""Benchmark CLI: the survey's sparse-kernel study on this machine, in one command.

    python -P experiments/run.py --quick                 # a few minutes on a laptop CPU
    python -P experiments/run.py --full                  # the survey grid (GPU: ~1 h or more)
    python -P experiments/run.py --full --ops spmm --formats csr nm --n 128 --dtypes bfloat16

Prints a table (one row per case, one column per line, median microseconds) and writes
``experiments/results/<device>-<date>-<preset>/`` (see ``experiments/report.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shlex
import signal
import sys
import time

# A GPU is shared by JAX, torch and CuPy lines: JAX must not grab 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
  # Appended, not prepended: under `python -P` an installed jsparse (with its compiled kernels)
  # still wins over the source tree, while `experiments` (never installed) is found here.
  sys.path.append(str(REPO_ROOT))

from experiments import grid, lines as lines_lib, machine as machine_lib  # noqa: E402
from experiments import report, roofline, runner, sanity, timing  # noqa: E402

RESULTS_ROOT = REPO_ROOT / "experiments" / "results"
# Quick: each measurement capped at 0.2 s (the --quick preset must finish within 5 minutes on a
# 2-core CPU; with 0.4 s it took 298 s in a fresh venv).
QUICK_TIMING = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.002, max_total_s=0.2)
FULL_TIMING = timing.TimingConfig(repeats=10, min_repeats=3, min_sample_s=0.005, max_total_s=2.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  preset = parser.add_mutually_exclusive_group()
  preset.add_argument("--quick", action="store_const", dest="preset", const="quick",
                      help="a few DLMC matrices, s in {0.7, 0.9, 0.98}, N in {32, 128}, float32, "
                      "all four formats (default)")
  preset.add_argument("--full", action="store_const", dest="preset", const="full",
                      help="the survey grid: DLMC + 4096x4096 uniform, 7 sparsities, "
                      "N in {32, 128, 1024}, float32 and bfloat16, all formats")
  parser.add_argument("--llm", action="store_true", help="add LLM-shaped weights "
                      f"({', '.join(grid.LLM_SOURCES)})")
  parser.add_argument("--ops", nargs="+", choices=grid.OPS)
  parser.add_argument("--formats", nargs="+", choices=grid.FORMATS)
  parser.add_argument("--sources", nargs="+", help="e.g. dlmc/magnitude_pruning/512x512#0 "
                      "uniform/4096x4096 llm/llama3_8b.mlp_up")
  parser.add_argument("--sparsities", nargs="+", type=float)
  parser.add_argument("--n", nargs="+", type=int, dest="ns", help="dense dimensions N")
  parser.add_argument("--dtypes", nargs="+", choices=grid.DTYPES)
  parser.add_argument("--lines", nargs="+", help="only these lines (names as in the table)")
  parser.add_argument("--repeats", type=int, help="timed samples per measurement")
  parser.add_argument("--max-op-s", type=float,
                      help="an op slower than this many seconds is timed by one sample only "
                           "(recorded in its timing method); default: no limit")
  parser.add_argument("--max-foreign-cpu", type=float, default=0.25,
                      help="CPU runs: retake a measurement (up to 4 times, the quietest kept) "
                      "while other processes use more than this many cores on average; 0: never")
  parser.add_argument("--rounds", type=int, default=1,
                      help="measure every line of a case this many times, interleaved, keeping "
                      "each line's lowest median (a shared machine's slow spells); default 1")
  parser.add_argument("--kernel-time", action="store_true",
                      help="GPU runs: also time each ok line's device activity per call from a "
                      "profiler trace (experiments/kernel_time.py: the same method for every "
                      "framework), recorded as kernel_median_us and the other kernel_* fields")
  parser.add_argument("--min-sample-ms", type=float,
                      help="calibrate every timer's samples to last at least this long (default: "
                      "the timing preset's, 2 ms quick / 5 ms full). On the 2-core CPU a jitted "
                      "loop pays ~0.2-0.4 ms a sample that 2 ms samples do not amortize "
                      "(experiments/results/cpu-amd-epyc-2c-2026-11-25-issue6-r4/README.md)")
  parser.add_argument("--timing", choices=("quick", "full"),
                      help="timing settings (default: the preset's); quick caps each "
                      "measurement at 0.2 s, full at 2 s")
  parser.add_argument("--max-gather-gb", type=float,
                      help="skip gather-based lines whose nnz x N intermediate exceeds this "
                      "(default: 2 on CPU, 16 on GPU)")
  parser.add_argument("--out", type=pathlib.Path, help="results folder (default: "
                      "experiments/results/<device>-<date>-<preset>)")
  parser.add_argument("--device-label", help="folder label instead of the detected device")
  parser.add_argument("--no-sanity", action="store_true", help="skip the timing cross-check")
  parser.add_argument("--budget-s", type=float, help="start no new case after this many seconds "
                      "(the rest are recorded as skipped; the results are still written)")
  args = parser.parse_args(argv)
  if args.min_sample_ms is not None and args.min_sample_ms <= 0:
    parser.error(f"--min-sample-ms must be > 0, got {args.min_sample_ms}")
  args.preset = args.preset or "quick"
  return args


class Progress:
  """A tqdm bar over (case, line) steps, or a line per case when tqdm is missing."""

  def __init__(self, total_cases: int):
    try:
      from tqdm import tqdm
      self._bar = tqdm(total=total_cases, unit="case", dynamic_ncols=True)
    except ImportError:
      self._bar = None
    self._total, self._done, self._case = total_cases, 0, None

  def __call__(self, case: grid.Case, line: str) -> None:
    if case != self._case:
      if self._case is not None:
        self._advance()
      self._case = case
      if self._bar is None:
        print(f"[{self._done + 1}/{self._total}] {case.key}", flush=True)
    if self._bar is not None:
      self._bar.set_postfix_str(f"{case.op} {case.format} s={case.sparsity:g} N={case.n} {line}",
                                refresh=False)

  def _advance(self) -> None:
    self._done += 1
    if self._bar is not None:
      self._bar.update(1)

  def close(self) -> None:
    if self._case is not None:
      self._advance()
    if self._bar is not None:
      self._bar.close()


class Terminated(BaseException):
  """SIGTERM arrived (e.g. from `timeout`): the run stops and writes what it has. A
  BaseException, like KeyboardInterrupt, so that no line's `except Exception` swallows it."""


def _raise_terminated(signum, frame) -> None:
  raise Terminated(f"signal {signum}")


def main(argv: list[str] | None = None) -> list[dict]:
  args = parse_args(argv)
  start = time.perf_counter()
  preset = grid.PRESETS[args.preset]
  sources = args.sources or (preset.sources + (grid.LLM_SOURCES if args.llm else ()))
  selected = preset.filtered(ops=args.ops, formats=args.formats, sources=sources,
                             sparsities=args.sparsities, ns=args.ns, dtypes=args.dtypes)
  # Sources in the order given (stable: each source keeps the grid's execution order), so that
  # under --budget-s the sources named first are the ones measured.
  cases = sorted(selected.cases(), key=lambda case: list(selected.sources).index(case.source))
  machine = machine_lib.detect()

  every_line = lines_lib.all_lines()
  if args.lines:
    unknown = sorted(set(args.lines) - {line.name for line in every_line})
    if unknown:
      raise SystemExit(f"--lines: unknown {unknown}; known: {[l.name for l in every_line]}")
    every_line = [line for line in every_line if line.name in args.lines]
  unavailable = {line.name: line.available(machine) for line in every_line
                 if line.available(machine) is not None}
  lines = [line for line in every_line if line.name not in unavailable]

  config = FULL_TIMING if (args.timing or args.preset) == "full" else QUICK_TIMING
  if args.repeats:
    config = dataclasses.replace(config, repeats=args.repeats)
  if args.max_op_s:
    config = dataclasses.replace(config, max_op_s=args.max_op_s)
  if args.min_sample_ms:
    config = dataclasses.replace(config, min_sample_s=args.min_sample_ms / 1000)
  if not machine.on_gpu and args.max_foreign_cpu > 0:
    # The lines of a CPU run share the host with any other process (timing.CpuUsage).
    config = dataclasses.replace(config, max_foreign_cpu=args.max_foreign_cpu)
  print(f"{len(cases)} cases x {len(lines)} lines on {machine.device} ({machine.platform}); "
        f"not available: {', '.join(sorted(unavailable)) or 'none'}", flush=True)
  load_at_start = os.getloadavg()
  print("measuring the roofline ...", flush=True)
  phases = {}
  roof = roofline.measure(machine.on_gpu)
  phases["roofline_s"] = time.perf_counter() - start
  print(f"  copy {roof.bandwidth_gbs:.1f} GB/s; matmul "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in roof.matmul_gflops.items())
        + (f"; gather {roof.gather_gbs:.1f} GB/s" if roof.gather_gbs else ""), flush=True)
  checks = [] if args.no_sanity else sanity.cross_check(machine)
  phases["sanity_s"] = time.perf_counter() - start - phases["roofline_s"]

  max_gather_gb = args.max_gather_gb or (16.0 if machine.on_gpu else 2.0)
  settings = runner.RunSettings(machine, roof, config, int(max_gather_gb * 2**30),
                                preset=args.preset,
                                deadline=None if args.budget_s is None else start + args.budget_s,
                                rounds=max(1, args.rounds), kernel_time=args.kernel_time)
  progress = Progress(len(cases))
  records: list[dict] = []
  interrupted = None
  previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    runner.run_cases(cases, lines, settings, progress, records)
  except (Terminated, KeyboardInterrupt) as stop:
    # A time limit (timeout sends SIGTERM) or Ctrl-C: keep and write the finished cases.
    interrupted = type(stop).__name__
    print(f"\ninterrupted ({interrupted}): writing the {len(records)} records finished so far",
          flush=True)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
    progress.close()

  out_dir = args.out or report.default_out_dir(
      RESULTS_ROOT, args.device_label or machine.slug(), machine.date, args.preset)
  seconds = time.perf_counter() - start
  run_info = {"preset": args.preset, "machine": machine.asdict(), "roofline": roof.asdict(),
              "timing": config.__dict__, "rounds": max(1, args.rounds),
              "kernel_time": args.kernel_time, "sanity": checks,
              "unavailable_lines": unavailable,
              "elapsed": f"{seconds:.0f} s", "phases": phases,
              "load_average": {"start": load_at_start, "end": os.getloadavg()}, "cases": len(cases),
              "interrupted": interrupted,
              "command": shlex.join(["python", "-P", "experiments/run.py", *(argv or sys.argv[1:])])}
  report.write(out_dir, records, run_info)
  print()
  print(report.text_table(*report.pivot(records)))
  counts = {}
  for record in records:
    counts[record["status"]] = counts.get(record["status"], 0) + 1
  print(f"\n{len(records)} records ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) "
        f"in {seconds:.0f} s -> {out_dir}")
  return records


if __name__ == "__main__":
  main()
