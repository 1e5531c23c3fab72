"""Speedups of one line over others in a run's results: geometric means and ranges, overall and
by sparsity and N. The check behind issue 7's targets ("geometric-mean speedup >= 1.25x over
Sputnik", ">= 3x over cuSPARSE", "faster than dense from 80% sparsity").

    python3 experiments/compare.py RESULTS.jsonl [more.jsonl ...] --line jsparse-pallas \
        --against sputnik torch-csr dense-fp32 [--op spmm] [--out table.md]

A speedup is ``time(other) / time(line)`` on one case (op, format, source, sparsity, N, dtype),
both records "ok"; cases where either is missing are left out and counted.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
from typing import Iterable, Sequence

import numpy as np


def load(paths: Iterable[pathlib.Path]) -> list[dict]:
  """Every record of the given results.jsonl files."""
  records = []
  for path in paths:
    with open(path) as f:
      records.extend(json.loads(line) for line in f if line.strip())
  return records


def _case_key(record: dict) -> tuple:
  return (record["op"], record["format"], record["source"], record["sparsity"], record["n"],
          record["dtype"])


METRICS = ("median_us", "kernel_median_us")


def speedups(records: Sequence[dict], line: str, other: str, op: str | None = None,
             metric: str = "median_us") -> tuple[list[tuple[tuple, float]], int]:
  """([(case key, time(other) / time(line))], cases with only one of the two ok).

  ``metric`` is the time compared: ``median_us`` (each line's wall-clock timer) or
  ``kernel_median_us`` (device time per call from a profiler trace, ``--kernel-time`` runs);
  a record without it counts as not ok."""
  times = collections.defaultdict(dict)
  for record in records:
    if (record.get("status") == "ok" and (op is None or record["op"] == op)
        and record.get(metric) is not None):
      times[_case_key(record)][record["line"]] = record[metric]
  pairs, unpaired = [], 0
  for key, by_line in sorted(times.items()):
    if line in by_line and other in by_line:
      pairs.append((key, by_line[other] / by_line[line]))
    elif line in by_line or other in by_line:
      unpaired += 1
  return pairs, unpaired


def geomean(values: Sequence[float]) -> float:
  return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def summary_rows(pairs: Sequence[tuple[tuple, float]]) -> list[tuple[str, int, float, float, float]]:
  """(group, cases, geometric mean, min, max): all cases, then by sparsity, then by N."""
  groups: dict[str, list[float]] = collections.defaultdict(list)
  for (_, _, _, sparsity, n, _), value in pairs:
    groups["all"].append(value)
    groups[f"s={sparsity:g}"].append(value)
    groups[f"N={n}"].append(value)
  if not pairs:
    return []
  order = (["all"] + sorted((g for g in groups if g.startswith("s=")), key=lambda g: float(g[2:]))
           + sorted((g for g in groups if g.startswith("N=")), key=lambda g: int(g[2:])))
  return [(g, len(groups[g]), geomean(groups[g]), min(groups[g]), max(groups[g])) for g in order]


def markdown(records: Sequence[dict], line: str, against: Sequence[str],
             op: str | None = None, metric: str = "median_us") -> str:
  """One table per other line: speedup of ``line`` over it (by ``metric``)."""
  out = []
  for other in against:
    pairs, unpaired = speedups(records, line, other, op, metric)
    if not pairs:
      continue  # the other line did not run here
    out.append(f"### {line} over {other}" + (f" ({op})" if op else "")
               + (f", by {metric}" if metric != "median_us" else "")
               + f": {len(pairs)} cases" + (f", {unpaired} unpaired" if unpaired else ""))
    out.append("")
    out.append("| cases | n | geomean | min | max | faster in |")
    out.append("|---|---|---|---|---|---|")
    for group, count, mean, low, high in summary_rows(pairs):
      wins = sum(1 for (key, value) in pairs if value > 1 and _in_group(key, group))
      out.append(f"| {group} | {count} | {mean:.2f}x | {low:.2f}x | {high:.2f}x | {wins} |")
    out.append("")
  return "\n".join(out)


def _in_group(key: tuple, group: str) -> bool:
  if group == "all":
    return True
  name, value = group.split("=")
  return (float(value) == key[3]) if name == "s" else (int(value) == key[4])


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("results", nargs="+", type=pathlib.Path)
  parser.add_argument("--line", default="jsparse-pallas")
  parser.add_argument("--against", nargs="+", required=True)
  parser.add_argument("--op", default=None)
  parser.add_argument("--metric", choices=METRICS, default="median_us",
                      help="the time compared (kernel_median_us: --kernel-time runs)")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args(argv)
  text = markdown(load(args.results), args.line, args.against, args.op, args.metric)
  if args.out:
    args.out.write_text(text + "\n")
  print(text)
  return text


if __name__ == "__main__":
  main()
