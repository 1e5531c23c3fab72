"""Writes a run's results: results.jsonl, run.json, table.md and the plots.

Layout of ``experiments/results/<device-slug>-<YYYY-MM-DD>-<preset>/``:
- ``results.jsonl``: one JSON object per (case, line), every status included ("n/a" too), with
  the case, the line, status and message, median/p10/p90 us, repeats, GFLOP/s, floor, roofline
  fraction, speedup over dense-fp32, the device, platform, CPU, library versions and date;
- ``run.json``: the run's machine, roofline measurement, timing settings, the timing-method cross
  check, the lines that were unavailable and why, and the command line;
- ``table.md``: the readable summary (``markdown``);
- the PNGs of ``experiments/plot.py`` (redrawn from results.jsonl by that script).
"""

from __future__ import annotations

import collections
import json
import pathlib
from typing import Sequence

from experiments import grid, plot
from experiments.lines import BASELINE

SPEEDUP = f"speedup_vs_{BASELINE}"
STATUS_MARKS = {"wrong": "WRONG", "error": "ERROR", "skipped": "skip"}


def default_out_dir(root: pathlib.Path, slug: str, date: str, preset: str) -> pathlib.Path:
  """``<root>/<device slug>-<date>-<preset>`` (the preset keeps a quick run from overwriting a
  full one of the same day)."""
  return root / f"{slug}-{date}-{preset}"


def write(out_dir: pathlib.Path, records: Sequence[dict], run_info: dict) -> list[pathlib.Path]:
  """Writes every file of the run; returns the paths written."""
  out_dir.mkdir(parents=True, exist_ok=True)
  results = out_dir / "results.jsonl"
  with open(results, "w") as stream:
    for record in records:
      stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
  info = out_dir / "run.json"
  info.write_text(json.dumps(run_info, indent=2, sort_keys=True, default=str) + "\n")
  table = out_dir / "table.md"
  table.write_text(markdown(records, run_info))
  written = [results, info, table]
  try:
    written += plot.draw_all(records, out_dir)
  except ImportError as missing:  # matplotlib is a "bench" extra
    run_info.setdefault("warnings", []).append(f"plots not drawn: {missing}")
  return written


def _load_lines(records: Sequence[dict], run_info: dict) -> list[str]:
  """How busy the machine was: load averages and other processes' CPU use during measurements."""
  parts = []
  load = run_info.get("load_average")
  if load:
    parts.append(f"- 1/5/15-min load average: {' / '.join(f'{v:.2f}' for v in load['start'])} "
                 f"at the start, {' / '.join(f'{v:.2f}' for v in load['end'])} at the end")
  foreign = [r["foreign_cpu"] for r in records if r.get("foreign_cpu") is not None]
  if foreign:
    limit = run_info.get("timing", {}).get("max_foreign_cpu")
    retaken = sum(1 for r in records if r.get("attempts", 1) > 1)
    over = sum(1 for v in foreign if limit is not None and v > limit)
    parts.append(f"- other processes' CPU use during the {len(foreign)} measurements (cores): "
                 f"median {sorted(foreign)[len(foreign) // 2]:.2f}, max {max(foreign):.2f}; "
                 f"{retaken} retaken for load over {limit}, {over} still over it")
  return parts


# -- tables --------------------------------------------------------------------------------------
def short_source(source: str) -> str:
  return source.replace("magnitude_pruning", "mag").replace("random_pruning", "rand")


def _case_label(record: dict) -> str:
  return (f"{record['op']} {record['format']} {short_source(record['source'])} "
          f"s={record['sparsity']:g} N={record['n']} {record['dtype']}")


def _shown(records: Sequence[dict]) -> list[dict]:
  """The records a table shows ("n/a" left out), in ``grid.display_order``."""
  shown = [r for r in records if r["status"] != "n/a"]
  return sorted(shown, key=lambda r: grid.display_order(
      grid.Case(*(r[field] for field in grid.Case.__dataclass_fields__))))


def _line_order(records: Sequence[dict]) -> list[str]:
  order = []
  for record in records:
    if record["line"] not in order:
      order.append(record["line"])
  return order


def _cell(record: dict | None, field: str, fmt: str) -> str:
  if record is None:
    return ""
  if record["status"] != "ok":
    return STATUS_MARKS.get(record["status"], record["status"])
  value = record.get(field)
  if value is None:
    return ""
  return _fmt_time(value) if field == "median_us" else format(value, fmt)


def _fmt_time(us: float) -> str:
  return f"{us:.3g}" if us < 1e3 else f"{us:.0f}"


def pivot(records: Sequence[dict], field: str = "median_us", fmt: str = ".3g") -> tuple[list, list]:
  """(header, rows): one row per case, one column per line that ran on any case."""
  shown = _shown(records)
  lines = _line_order(shown)
  by_case = collections.OrderedDict()
  for record in shown:
    by_case.setdefault(_case_label(record), {})[record["line"]] = record
  rows = []
  for label, cells in by_case.items():
    row = [label] + [_cell(cells.get(line), field, fmt) for line in lines]
    rows.append(row + [_best(cells)])
  return ["case"] + lines + [f"best sparse (x {BASELINE})"], rows


def _best(cells: dict) -> str:
  """The fastest checked non-dense line of a case and its speedup over the baseline."""
  timed = [r for name, r in cells.items()
           if r["status"] == "ok" and not name.startswith("dense")]
  if not timed:
    return ""
  best = min(timed, key=lambda r: r["median_us"])
  speedup = best.get(SPEEDUP)
  return best["line"] + ("" if speedup is None else f" ({speedup:.2f}x)")


def text_table(header: list, rows: list) -> str:
  """A fixed-width table for the terminal."""
  widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
  lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
           for row in [header, ["-" * w for w in widths], *rows]]
  return "\n".join(lines)


def _markdown_table(header: list, rows: list) -> str:
  lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
  return "\n".join(lines)


def markdown(records: Sequence[dict], run_info: dict) -> str:
  machine, roofline = run_info["machine"], run_info["roofline"]
  parts = [
      f"# Sparse kernel benchmark: {run_info.get('preset', '')} on {machine['device']} "
      f"({machine['platform']})",
      "",
      f"- date {machine['date']}; CPU {machine['cpu_model']} ({machine['cpu_cores']} cores); "
      f"last-level cache {machine['cache_bytes'] / 2**20:.0f} MiB",
      "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(machine["versions"].items())),
      f"- measured roofline: copy bandwidth {roofline['bandwidth_gbs']:.1f} GB/s; dense matmul "
      + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in roofline["matmul_gflops"].items())
      + (f"; gather {roofline['gather_gbs']:.1f} GB/s (rows of B gathered through the caches)"
         if roofline.get("gather_gbs") else ""),
      f"- timing: {run_info['timing']}; rounds per line {run_info.get('rounds', 1)} (the lowest "
      f"median kept); wall time of the run {run_info.get('elapsed', '?')}",
      f"- command: `{run_info.get('command', '')}`",
      *_load_lines(records, run_info),
      "",
      "Times are medians in microseconds per op (p10/p90 in results.jsonl). WRONG: result off the "
      "float64 reference (not timed); ERROR: raised; skip: too large for the gather-based path. "
      "Cases where a line does not apply are left blank.",
  ]
  for op in plot.OP_ORDER:
    chosen = [r for r in records if r["op"] == op]
    if not _shown(chosen):
      continue
    parts += ["", f"## {op}: median time (us)", "", _markdown_table(*pivot(chosen))]
    parts += ["", f"## {op}: fraction of the measured roofline (floor / time)", "",
              _markdown_table(*pivot(chosen, "roofline_fraction", ".3f"))]
    parts += ["", f"## {op}: speedup over {BASELINE}", "",
              _markdown_table(*pivot(chosen, SPEEDUP, ".2f"))]
  problems = [r for r in records if r["status"] in ("wrong", "error", "skipped")]
  if problems:
    parts += ["", "## Not timed", "", _markdown_table(
        ["case", "line", "status", "message"],
        [[_case_label(r), r["line"], r["status"], r["message"].replace("|", "/")]
         for r in problems])]
  sanity = run_info.get("sanity", [])
  if sanity:
    rows = [[s["library"], s.get("method", "-"), s["status"],
             _fmt_time(s["median_us"]) if "median_us" in s else s.get("message", ""),
             f"{s['gflops']:.1f}" if "gflops" in s else "", s.get("repeats", "")]
            for s in sanity]
    shape = "x".join(map(str, sanity[0]["shape"]))
    parts += ["", f"## Timing cross-check: the same float32 matmul ({shape}) by every method", "",
              _markdown_table(["library", "method", "status", "median us", "GFLOP/s", "repeats"],
                              rows)]
  unavailable = run_info.get("unavailable_lines", {})
  if unavailable:
    parts += ["", "## Lines not available here", ""]
    parts += [f"- {name}: {reason}" for name, reason in unavailable.items()]
  return "\n".join(parts) + "\n"
