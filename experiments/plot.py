"""Draws every figure of a run from its results.jsonl alone (NumPy and matplotlib only).

    python experiments/plot.py experiments/results/<run>/results.jsonl [--out DIR]

Figures (PNG, next to the jsonl unless ``--out``):
- ``throughput_vs_sparsity_N{n}.png``: useful GFLOP/s (2 * nnz * N / time, log scale) against
  sparsity; one panel per (op, dtype), one series per line (jsparse lines per format), the
  geometric mean over matrix sources. The survey's main figure: sparse throughput falls with
  sparsity while the dense baseline's useful throughput falls faster.
- ``roofline_fraction.png``: measured floor / time against sparsity (1 = at the roofline), one
  panel per op, geometric mean over sources, N and dtypes.
- ``speedup_over_<baseline>.png``: baseline time / line time against sparsity, one panel per
  (op, N); above 1 the line beats the dense float32 matmul.
Only records with status "ok" are drawn.
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
from typing import Callable, Iterable, Sequence

import numpy as np

BASELINE = "dense-fp32"
OP_ORDER = ("spmm", "spmv", "sddmm")
# Lines whose cost depends on the format: their series are split per format.
FORMAT_SPECIFIC_PREFIX = "jsparse-"


def load(path: str | pathlib.Path) -> list[dict]:
  with open(path) as lines:
    return [json.loads(line) for line in lines if line.strip()]


def series_name(record: dict) -> str:
  name = record["line"]
  if name.startswith(FORMAT_SPECIFIC_PREFIX):
    name += f"/{record['format']}"
  return name


def _geomean(values: Sequence[float]) -> float:
  return float(np.exp(np.mean(np.log(values))))


def _aggregate(records: Iterable[dict], value: Callable[[dict], float]) -> dict:
  """{series: ([sparsities], [geometric means])}, sorted by sparsity."""
  points = collections.defaultdict(lambda: collections.defaultdict(list))
  for record in records:
    v = value(record)
    if v is not None and v > 0 and np.isfinite(v):
      points[series_name(record)][record["sparsity"]].append(v)
  return {name: (sorted(by_x), [_geomean(by_x[x]) for x in sorted(by_x)])
          for name, by_x in sorted(points.items())}


def _styles(records: Sequence[dict]) -> dict:
  """{series: plot style}, the same in every panel and figure of a run."""
  import matplotlib
  palette = matplotlib.colormaps["tab20"].colors
  names = sorted({series_name(r) for r in records})
  styles, sparse_index = {}, 0
  for name in names:
    if name.startswith("dense"):
      styles[name] = {"linestyle": "--", "marker": "s",
                      "color": "black" if "fp32" in name else "gray"}
    else:
      styles[name] = {"linestyle": "-", "marker": "o",
                      "color": palette[(2 * sparse_index) % 20 + (sparse_index // 10) % 2]}
      sparse_index += 1
  return styles


def _panels(plt, count: int, title: str):
  columns = min(count, 3)
  rows = -(-count // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.0 * rows), squeeze=False)
  figure.suptitle(title)
  for extra in axes.flat[count:]:
    extra.set_visible(False)
  return figure, list(axes.flat)


def _draw(axis, series: dict, styles: dict, ylabel: str, title: str) -> None:
  for name, (xs, ys) in series.items():
    axis.plot(xs, ys, label=name, **styles[name])
  axis.set_yscale("log")
  axis.set_xlabel("sparsity")
  axis.set_ylabel(ylabel)
  axis.set_title(title, fontsize=10)
  axis.grid(True, which="both", alpha=0.3)
  if series:
    axis.legend(fontsize=7, loc="best")


def _save(figure, path: pathlib.Path) -> pathlib.Path:
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  return path


def _device_label(records: Sequence[dict]) -> str:
  first = records[0]
  device = first["device"] if first["platform"] != "cpu" else f"CPU {first['cpu_model']}"
  return f"{device} ({first['platform']}), {first['date']}"


def draw_all(records: Sequence[dict], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
  """Writes every figure for ``records`` into ``out_dir``; returns the paths."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out_dir = pathlib.Path(out_dir)
  ok = [r for r in records if r.get("status") == "ok"]
  if not ok:
    return []
  label = _device_label(ok)
  styles = _styles(ok)
  paths = []
  ops = sorted({r["op"] for r in ok}, key=OP_ORDER.index)

  for n in sorted({r["n"] for r in ok}):
    panels = [(op, dtype) for op in ops for dtype in sorted({r["dtype"] for r in ok})
              if any(r["op"] == op and r["dtype"] == dtype and r["n"] == n for r in ok)]
    figure, axes = _panels(plt, len(panels), f"Throughput vs sparsity, N={n} - {label}")
    for axis, (op, dtype) in zip(axes, panels):
      chosen = [r for r in ok if r["op"] == op and r["dtype"] == dtype and r["n"] == n]
      _draw(axis, _aggregate(chosen, lambda r: r.get("gflops")), styles, "useful GFLOP/s",
            f"{op}, {dtype}, N={n} (geomean over sources)")
    paths.append(_save(figure, out_dir / f"throughput_vs_sparsity_N{n}.png"))
    plt.close(figure)

  figure, axes = _panels(plt, len(ops), f"Fraction of the measured roofline - {label}")
  for axis, op in zip(axes, ops):
    chosen = [r for r in ok if r["op"] == op]
    _draw(axis, _aggregate(chosen, lambda r: r.get("roofline_fraction")), styles,
          "floor / time (1 = roofline)", f"{op} (geomean over sources, N, dtypes)")
  paths.append(_save(figure, out_dir / "roofline_fraction.png"))
  plt.close(figure)

  key = f"speedup_vs_{BASELINE}"
  panels = [(op, n) for op in ops for n in sorted({r["n"] for r in ok if r["op"] == op})]
  figure, axes = _panels(plt, len(panels), f"Speedup over {BASELINE} - {label}")
  for axis, (op, n) in zip(axes, panels):
    chosen = [r for r in ok if r["op"] == op and r["n"] == n and r["line"] != BASELINE]
    _draw(axis, _aggregate(chosen, lambda r: r.get(key)), styles, f"{BASELINE} time / line time",
          f"{op}, N={n} (geomean over sources, dtypes)")
    axis.axhline(1.0, color="black", linewidth=0.8)
  paths.append(_save(figure, out_dir / f"speedup_over_{BASELINE}.png"))
  plt.close(figure)
  return paths


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("results", help="a results.jsonl written by experiments/run.py")
  parser.add_argument("--out", help="folder for the PNGs (default: the jsonl's folder)")
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out or pathlib.Path(args.results).parent)
  out.mkdir(parents=True, exist_ok=True)
  for path in draw_all(load(args.results), out):
    print(path)


if __name__ == "__main__":
  main()
