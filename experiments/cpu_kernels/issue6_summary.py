"""Issue 6's targets and per-configuration table from a suite run's results.jsonl.

    python experiments/cpu_kernels/issue6_summary.py experiments/results/<run>/results.jsonl

Prints markdown: the geometric-mean speedup of jsparse-ffi over the best of SciPy, torch CSR and
jax BCSR per configuration (overall and by sparsity), how many configurations beat XLA's and
NumPy's dense float32 product, and one row per configuration with jsparse-ffi's fraction of the
run's measured float32 matmul peak (GFLOP/s of useful work, 2 * nnz * N, over that peak).
"""

from __future__ import annotations

import collections
import json
import math
import pathlib
import sys

SPARSE_BASELINES = ("scipy-csr", "torch-csr", "jax-bcsr")
DENSE = {"XLA": "dense-fp32", "NumPy": "dense-numpy-fp32"}
KERNEL = "jsparse-ffi"


def _geomean(values: list[float]) -> float:
  return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summarize(records: list[dict]) -> str:
  by_case = collections.defaultdict(dict)
  for record in records:
    if record["status"] == "ok":
      by_case[(record["source"], record["sparsity"], record["n"])][record["line"]] = record
  rows, speedups, by_sparsity = [], [], collections.defaultdict(list)
  wins = {name: [] for name in DENSE}
  for (source, sparsity, n), lines in sorted(by_case.items()):
    kernel = lines.get(KERNEL)
    baselines = [lines[name] for name in SPARSE_BASELINES if name in lines]
    if kernel is None or not baselines:
      continue
    best = min(baselines, key=lambda r: r["median_us"])
    speedup = best["median_us"] / kernel["median_us"]
    speedups.append(speedup)
    by_sparsity[sparsity].append(speedup)
    versus = {}
    for name, line in DENSE.items():
      if line in lines:
        versus[name] = lines[line]["median_us"] / kernel["median_us"]
        wins[name].append((versus[name] > 1, source, sparsity, n, versus[name]))
    peak = kernel.get("peak_gflops")
    fraction = kernel["gflops"] / peak if peak else float("nan")
    dense_cells = []
    for name, line in DENSE.items():
      dense_cells.append(f"{lines[line]['median_us']:.0f}" if line in lines else "")
    rows.append(f"| {source} | {sparsity:g} | {n} | {kernel['median_us']:.0f} | "
                f"{best['median_us']:.0f} | {best['line']} | {speedup:.2f}x | "
                + " | ".join(dense_cells) + " | "
                + " | ".join(f"{versus[name]:.2f}x" if name in versus else "" for name in DENSE)
                + f" | {fraction:.3f} |")
  out = [f"- Geometric-mean speedup of {KERNEL} over the best of {', '.join(SPARSE_BASELINES)} "
         f"over {len(speedups)} configurations: **{_geomean(speedups):.2f}x** (target >= 2x: "
         f"{'met' if _geomean(speedups) >= 2 else 'missed'}). By sparsity: "
         + ", ".join(f"{s:g} {_geomean(v):.2f}x" for s, v in sorted(by_sparsity.items())) + "."]
  for name, results in wins.items():
    won = sum(1 for result in results if result[0])
    lost = [f"{source} s={sparsity:g} N={n} {ratio:.2f}x"
            for ok, source, sparsity, n, ratio in results if not ok]
    out.append(f"- Faster than {name} dense float32 ({DENSE[name]}) in **{won} of {len(results)}**"
               + (f"; slower in: {'; '.join(lost)}" if lost else "") + ".")
  fractions = [float(row.rsplit("|", 2)[1]) for row in rows]
  if fractions:
    out.append(f"- {KERNEL}'s fraction of the measured float32 matmul peak: "
               f"{min(fractions):.3f}-{max(fractions):.3f} (median "
               f"{sorted(fractions)[len(fractions) // 2]:.3f}), per configuration in the table.")
  header = ("| source | s | N | jsparse-ffi (us) | best sparse baseline (us) | which | speedup | "
            + " | ".join(f"{name} dense fp32 (us)" for name in DENSE) + " | "
            + " | ".join(f"vs {name} dense" for name in DENSE) + " | fraction of fp32 peak |")
  table = [header, "|" + "---|" * header.count(" | ") + "---|"] + rows
  return "\n".join(out) + "\n\n" + "\n".join(table) + "\n"


def main(argv: list[str]) -> None:
  path = pathlib.Path(argv[1])
  records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  print(summarize(records), end="")


if __name__ == "__main__":
  main(sys.argv)
