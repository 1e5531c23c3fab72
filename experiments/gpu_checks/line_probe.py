"""Which line of a case is slow? Builds one harness case and runs each line's prepare, check and
timing in turn, printing (flushed) when each step starts and how long it took, so that a run cut
off by a time limit still shows where it was.

    python3 experiments/gpu_checks/line_probe.py --case spmm/csr/uniform/4096x4096/0.5/32/bfloat16 \
        --lines dense-bf16 jsparse-pallas torch-csr
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

from experiments import check, grid, lines as lines_lib, machine as machine_lib, problems, timing  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--case", required=True, help="op/format/source.../sparsity/n/dtype")
  parser.add_argument("--lines", nargs="+", required=True)
  args = parser.parse_args()
  op, fmt, *source, sparsity, n, dtype = args.case.split("/")
  case = grid.Case(op, fmt, "/".join(source), float(sparsity), int(n), dtype)
  machine = machine_lib.detect()
  by_name = {line.name: line for line in lines_lib.all_lines()}
  started = time.perf_counter()

  def say(text: str) -> None:
    print(f"[{time.perf_counter() - started:7.1f} s] {text}", flush=True)

  say(f"building {case.key}")
  problem = problems.build_problem(case)
  say("float64 reference")
  expected = check.reference(problem)
  config = timing.TimingConfig(repeats=3, min_repeats=3, min_sample_s=0.002, max_total_s=0.3,
                                max_op_s=0.5)
  for name in args.lines:
    line = by_name[name]
    reason = line.available(machine) or line.applies(case, machine)
    if reason:
      say(f"{name}: n/a ({reason})")
      continue
    say(f"{name}: prepare")
    prepared = line.prepare(problem, 1, machine)
    say(f"{name}: first call + check")
    verdict = check.compare(prepared.to_dense(prepared.timer.run_once()), expected,
                            check.tolerance(line.dtype_for(case), on_gpu=machine.on_gpu,
                                            tf32=line.tf32))
    say(f"{name}: error {verdict.error:.2e}; timing")
    measured = prepared.timer.measure(config)
    say(f"{name}: median {measured.median_us:.1f} us")


if __name__ == "__main__":
  main()
