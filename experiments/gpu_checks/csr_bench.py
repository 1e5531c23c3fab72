"""Spot timings of the Pallas CSR kernels (issue 7) on a 4096x4096 uniform matrix, round 3.

The benchmark harness (``experiments/run.py``) times the SpMM grid; this script times what it
does not, in a small budget: SpMV against the measured copy bandwidth (s = 0.7, 0.9, 0.98),
SDDMM against torch.sparse.sampled_addmm (s = 0.9, D = 128) with config variants, SpMM spot
checks (default config, variants, torch CSR = cuSPARSE), and last the cost of the in-call row
schedule (the same SpMV kernel given a precomputed row order). Issue 7's targets are judged at
the end of the markdown (met, or missed by how much). Every jsparse result is
checked against a float64/float32-HIGHEST product before it is timed; per-case errors are recorded
and the run goes on; cases stop once the time budget is spent.

  python3 -P experiments/gpu_checks/csr_bench.py OUTDIR [--smoke] [--budget-s 24]

Writes OUTDIR/csr_bench.json (rows + device, versions, date) and OUTDIR/csr_bench.md after every
case and prints the table last. ``--smoke``: tiny shapes, Pallas interpret mode, on whatever
platform JAX has (checks this script on a CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import datetime
import json
import pathlib
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from experiments import timing
from jsparse.formats import _structure
from pallas_kernels import _rows, csr_sddmm, csr_spmm, csr_spmv

HIGHEST = jax.lax.Precision.HIGHEST


def uniform_csr(rng, size: int, sparsity: float):
  """A ``size x size`` matrix, each entry stored with probability ``1 - sparsity`` (normal
  values): ``(dense float32, data, col_indices int32, row_offsets int32)``."""
  rows, cols = np.nonzero(rng.random((size, size), dtype=np.float32) >= sparsity)
  data = rng.standard_normal(rows.size, dtype=np.float32)
  dense = np.zeros((size, size), np.float32)
  dense[rows, cols] = data
  offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=size))]).astype(np.int32)
  return dense, data, cols.astype(np.int32), offsets


class Unavailable(Exception):
  """A baseline that this machine cannot run (recorded as the line's error, no traceback)."""


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def rel_error(actual, expected) -> float:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / (np.max(np.abs(expected)) + 1e-30))


class Bench:
  def __init__(self, outdir: pathlib.Path, smoke: bool, budget_s: float):
    self.outdir, self.smoke, self.budget_s = outdir, smoke, budget_s
    self.size = 64 if smoke else 4096
    self.start = time.perf_counter()
    self.config = timing.TimingConfig(repeats=5, min_repeats=3, max_total_s=0.2,
                                      min_sample_s=0.001 if smoke else 0.002)
    self.rows: list[dict] = []
    self.torch = None
    if not smoke:
      try:
        import torch
        self.torch = torch if torch.cuda.is_available() else None
      except Exception:  # torch is optional: its lines are then reported missing
        self.torch = None

  def out_of_time(self) -> bool:
    return time.perf_counter() - self.start > self.budget_s

  def record(self, case: dict, line: str, run) -> None:
    """Runs ``run() -> (Measurement, rel_error or None, extra dict)`` and records the outcome."""
    row = dict(case, line=line)
    if self.out_of_time():
      row["error"] = "skipped: time budget spent"
    else:
      try:
        measurement, error, extra = run()
        row.update(median_us=measurement.median_us, p10_us=measurement.p10_us,
                   p90_us=measurement.p90_us, method=measurement.method, rel_error=error,
                   **extra)
      except Exception as exc:  # one failing case must not stop the batch
        row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        if not isinstance(exc, Unavailable):
          traceback.print_exc(limit=3)
    print(json.dumps(row), flush=True)
    self.rows.append(row)
    self.write()  # after every case: a run killed by its time limit keeps what it measured

  def write(self) -> str:
    meta = dict(device=str(jax.devices()[0]), device_kind=jax.devices()[0].device_kind,
                jax=jax.__version__, jaxlib=jax.lib.__version__, numpy=np.__version__,
                triton=_version("triton"), torch=getattr(self.torch, "__version__", None),
                smoke=self.smoke, date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                timing=dataclasses.asdict(self.config), jax_loop_unroll=timing.UNROLL,
                elapsed_s=time.perf_counter() - self.start)
    (self.outdir / "csr_bench.json").write_text(json.dumps(dict(meta=meta, rows=self.rows),
                                                           indent=1))
    versions = ", ".join(f"{name} {meta[name]}" for name in ("jax", "jaxlib", "triton", "torch"))
    text = (f"# CSR kernels, {meta['device_kind']} ({meta['device']}), {meta['date']}\n\n"
            f"{versions}; {self.size}x{self.size} uniform, float32; medians of {self.config.repeats} samples "
            f"(jax: fori-loop timer, {timing.UNROLL} calls an iteration; torch: CUDA events)\n\n{table(self.rows)}\n\n{targets(self.rows)}\n")
    (self.outdir / "csr_bench.md").write_text(text)
    return text

  def jax_timed(self, fn, operands, expected=None, check_tolerance=1e-4):
    timer = timing.JaxLoopTimer(fn, [operands])
    out = timer.run_once()
    error = None if expected is None else rel_error(out, expected)
    if error is not None and not error <= check_tolerance:
      raise AssertionError(f"wrong result: relative error {error:.3g} > {check_tolerance}")
    return timer.measure(self.config), error, {}

  def torch_timed(self, call):
    timer = timing.TorchCudaTimer([call])
    timer.run_once()
    return timer.measure(self.config), None, {}


class Matrices:
  """The uniform test matrices, made once per sparsity, with their device arrays and row order."""

  def __init__(self, rng, size: int):
    self.rng, self.size, self._made = rng, size, {}

  def __call__(self, sparsity: float):
    if sparsity not in self._made:
      dense, data, cols, offsets = uniform_csr(self.rng, self.size, sparsity)
      device = tuple(jnp.asarray(x) for x in (data, cols, offsets))
      order = jax.jit(_rows.rows_by_length, static_argnames="max_row_length")(
          device[2], max_row_length=self.size)
      # What jsparse.CSR sees on the host: rows already in the schedule's order (then the public
      # ops launch them in order, no schedule computed in the call).
      natural = _structure.rows_in_launch_order(offsets)
      self._made[sparsity] = dict(dense=dense, data=data, cols=cols, offsets=offsets,
                                  device=device, order=order, natural=natural)
    return self._made[sparsity]


def spmm_line(bench: Bench, matrices: Matrices, sparsity: float, n: int, line: str,
              interpret: bool, config=None, given_order: bool = False,
              scheduled: bool = False) -> None:
  """One SpMM line: ``line`` is jsparse-pallas* (``config``; ``given_order``: the row order
  passed in, not computed in the call; otherwise as the public op launches it: in order when the
  matrix's rows already follow the schedule, unless ``scheduled`` forces computing it) or
  torch-csr."""
  size, matrix = matrices.size, matrices(sparsity)
  nnz = int(matrix["data"].size)
  chosen = config or csr_spmm.choose_config(size, size, n, nnz)
  natural = matrix["natural"] and not scheduled and not given_order
  case = dict(op="spmm", m=size, k=size, n=n, sparsity=sparsity, nnz=nnz, dtype="float32",
              config=str(chosen), natural_order=natural)
  rng = np.random.default_rng(n)
  b = rng.standard_normal((size, n), dtype=np.float32)
  if line == "torch-csr":
    bench.record(case, line, lambda: _torch_spmm(bench, matrix["dense"], b))
    return
  expected = matrix["dense"].astype(np.float64) @ b.astype(np.float64)
  order = (matrix["order"],) if given_order else ()
  call = lambda d, c, o, b, *r: csr_spmm.kernel_fn(
      d, c, o, b, num_rows=size, config=config, interpret=interpret,
      row_order=r[0] if r else None, natural_order=natural)
  bench.record(case, line, lambda: bench.jax_timed(
      call, (*matrix["device"], jnp.asarray(b), *order), expected))


def _torch(bench: Bench):
  if bench.torch is None:
    raise Unavailable("torch with CUDA not available")
  return bench.torch


def _torch_spmm(bench: Bench, dense, b):
  torch = _torch(bench)
  a = torch.from_numpy(dense).cuda().to_sparse_csr()
  tb = torch.from_numpy(b).cuda()
  return bench.torch_timed(lambda: a @ tb)


def sddmm_line(bench: Bench, matrices: Matrices, sparsity: float, inner: int, line: str,
               interpret: bool, config=None) -> None:
  """One SDDMM line: jsparse-pallas* (``config``) or torch-sampled-addmm."""
  size, matrix = matrices.size, matrices(sparsity)
  nnz = int(matrix["data"].size)
  case = dict(op="sddmm", m=size, k=size, n=inner, sparsity=sparsity, nnz=nnz, dtype="float32",
              config=str(config or csr_sddmm.choose_config(size, nnz, inner)))
  rng = np.random.default_rng(inner)
  x = rng.standard_normal((size, inner), dtype=np.float32)
  y = rng.standard_normal((size, inner), dtype=np.float32)
  if line == "torch-sampled-addmm":
    bench.record(case, line, lambda: _torch_sddmm(bench, matrix["dense"], x, y))
    return
  rows = np.repeat(np.arange(size), np.diff(matrix["offsets"]))
  expected = np.einsum("ed,ed->e", x[rows].astype(np.float64),
                       y[matrix["cols"]].astype(np.float64))
  call = lambda c, o, x, y: csr_sddmm.kernel_fn(c, o, x, y, num_rows=size, config=config,
                                                interpret=interpret)
  bench.record(case, line, lambda: bench.jax_timed(
      call, (*matrix["device"][1:], jnp.asarray(x), jnp.asarray(y)), expected))


def _torch_sddmm(bench: Bench, dense, x, y):
  torch = _torch(bench)
  pattern = torch.from_numpy(dense).cuda().to_sparse_csr()
  tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
  return bench.torch_timed(lambda: torch.sparse.sampled_addmm(pattern, tx, ty.T, beta=0.0))


def copy_line(bench: Bench) -> None:
  """Copy bandwidth (read + write) of a 64 MiB float32 array, the SpMV yardstick."""
  words = (bench.size * bench.size) if not bench.smoke else 1 << 16
  source = jnp.asarray(np.random.default_rng(1).standard_normal(words, dtype=np.float32))
  case = dict(op="copy", m=words, k=1, n=1, sparsity=0.0, nnz=words, dtype="float32")
  bench.record(case, "jnp-copy", lambda: _with_bandwidth(
      bench.jax_timed(lambda s: s * 2.0, (source,)), 8 * words))


def spmv_line(bench: Bench, matrices: Matrices, sparsity: float, line: str, interpret: bool,
              config=None, given_order: bool = False, scheduled: bool = False) -> None:
  """One SpMV line (jsparse-pallas*), with its bandwidth over the bytes it must move; the row
  order as in ``spmm_line``."""
  size, matrix = matrices.size, matrices(sparsity)
  nnz = int(matrix["data"].size)
  natural = matrix["natural"] and not scheduled and not given_order
  case = dict(op="spmv", m=size, k=size, n=1, sparsity=sparsity, nnz=nnz, dtype="float32",
              config=str(config or csr_spmv.choose_config(size, nnz)), natural_order=natural)
  vector = np.random.default_rng(2).standard_normal(size, dtype=np.float32)
  expected = matrix["dense"].astype(np.float64) @ vector
  nbytes = 8 * nnz + 4 * (size + 1) + 8 * size  # values, columns, offsets, x, y
  order = (matrix["order"],) if given_order else ()
  call = lambda d, c, o, v, *r: csr_spmv.kernel_fn(
      d, c, o, v, num_rows=size, config=config, interpret=interpret,
      row_order=r[0] if r else None, natural_order=natural)
  bench.record(case, line, lambda: _with_bandwidth(
      bench.jax_timed(call, (*matrix["device"], jnp.asarray(vector), *order), expected), nbytes))


def _with_bandwidth(result, nbytes: int):
  measurement, error, extra = result
  gb_per_s = nbytes / measurement.median_us / 1e3
  return measurement, error, dict(extra, bytes=nbytes, gb_per_s=gb_per_s)


def table(rows: list[dict]) -> str:
  copy = [r["gb_per_s"] for r in rows if r["op"] == "copy" and "gb_per_s" in r]
  lines = ["| op | s | N/D | line | median us | vs best baseline | note |",
           "|---|---|---|---|---|---|---|"]
  for row in rows:
    if row["op"] == "copy":
      continue
    key = (row["op"], row["sparsity"], row["n"])
    same = [r for r in rows if (r["op"], r["sparsity"], r["n"]) == key and "median_us" in r
            and not r["line"].startswith("jsparse")]
    best = min((r["median_us"] for r in same), default=None)
    median = row.get("median_us")
    ours = row["line"].startswith("jsparse")
    speedup = f"{best / median:.2f}x" if best and median and ours else ""
    note = row.get("error", "") or (row["config"] if row["line"].endswith("variant") else "")
    if row["op"] == "spmv" and copy and "gb_per_s" in row:
      note = (f"{row['gb_per_s']:.0f} GB/s = {100 * row['gb_per_s'] / copy[0]:.0f}% of copy"
              + (f"; {note}" if note else ""))
    lines.append(f"| {row['op']} | {row['sparsity']} | {row['n']} | {row['line']} | "
                 f"{'' if median is None else f'{median:.1f}'} | {speedup} | {note} |")
  if copy:
    lines.append(f"\ncopy bandwidth (jnp, read + write): {copy[0]:.0f} GB/s")
  return "\n".join(lines)


# Config variants timed beside the defaults, as data for the next tuning step; the GPU test
# ``test_csr_gpu_configs.py`` runs each of them (compiled) on ragged rows before they are timed.
SPMM_VARIANTS = {  # (sparsity, N) -> configs; the defaults are choose_config's
    (0.9, 128): (csr_spmm.SpmmConfig(block_n=64, block_nnz=32, num_warps=4, rows_per_program=2),
                 csr_spmm.SpmmConfig(block_n=128, block_nnz=32, num_warps=8)),
    (0.98, 32): (csr_spmm.SpmmConfig(block_n=32, block_nnz=16, num_warps=4, rows_per_program=2),),
}
SDDMM_VARIANTS = (csr_sddmm.SddmmConfig(block_nnz=32, block_d=128, num_warps=8, rows_per_program=2),
                  csr_sddmm.SddmmConfig(block_nnz=64, block_d=128, num_warps=8),
                  csr_sddmm.SddmmConfig(block_nnz=32, block_d=128, num_warps=4))
# Issue 7's targets that these spot timings can judge (the harness judges SpMM over its grid).
TARGETS = (("spmv", "fraction of copy bandwidth", 0.60),
           ("sddmm", "speedup over torch sampled_addmm", 3.0),
           ("spmm", "speedup over torch CSR (cuSPARSE)", 3.0))


def plan(bench: Bench, matrices: Matrices, interpret: bool):
  """The cases, most telling first: those left when the budget runs out matter least."""
  smoke = bench.smoke
  sparsities = (0.9,) if smoke else (0.7, 0.9, 0.98)
  inner = 8 if smoke else 128
  yield lambda: copy_line(bench)
  for sparsity in sparsities:
    yield lambda s=sparsity: spmv_line(bench, matrices, s, "jsparse-pallas", interpret)
  yield lambda: sddmm_line(bench, matrices, 0.9, inner, "jsparse-pallas", interpret)
  yield lambda: sddmm_line(bench, matrices, 0.9, inner, "torch-sampled-addmm", interpret)
  for config in SDDMM_VARIANTS:
    yield lambda c=config: sddmm_line(bench, matrices, 0.9, inner, "jsparse-pallas-variant",
                                      interpret, config=c)
  # SpMM spot checks (the harness times the grid against every baseline): the default config
  # (round 2's winners), two interleaved rows a program, torch CSR.
  for sparsity, n in ((0.9, 128), (0.98, 32)):
    size_n = 8 if smoke else n
    yield lambda s=sparsity, n=size_n: spmm_line(bench, matrices, s, n, "jsparse-pallas",
                                                 interpret)
    for config in SPMM_VARIANTS[(sparsity, n)]:
      yield lambda s=sparsity, n=size_n, c=config: spmm_line(
          bench, matrices, s, n, "jsparse-pallas-variant", interpret, config=c)
    yield lambda s=sparsity, n=size_n: spmm_line(bench, matrices, s, n, "torch-csr", interpret)
  # Same SpMV kernel, row order precomputed, and computed in the call: the differences are what
  # the in-call schedule costs and what launching in order (where the rows allow it) saves.
  yield lambda: spmv_line(bench, matrices, sparsities[-1], "jsparse-pallas-given-order",
                          interpret, given_order=True)
  for sparsity in sparsities:
    yield lambda s=sparsity: spmv_line(bench, matrices, s, "jsparse-pallas-scheduled",
                                       interpret, scheduled=True)
  yield lambda: spmm_line(bench, matrices, 0.98, 8 if smoke else 32, "jsparse-pallas-scheduled",
                          interpret, scheduled=True)


def targets(rows: list[dict]) -> str:
  """Issue 7's targets against the default jsparse line of each case: met or missed, by how
  much (the table shows whether a variant does better)."""
  copy = [r["gb_per_s"] for r in rows if r["op"] == "copy" and "gb_per_s" in r]
  lines = []
  for op, what, target in TARGETS:
    for key in sorted({(r["sparsity"], r["n"]) for r in rows if r["op"] == op}):
      ours = [r for r in rows if (r["op"], r["sparsity"], r["n"]) == (op, *key)
              and r["line"] == "jsparse-pallas" and "median_us" in r]  # the default config
      theirs = [r["median_us"] for r in rows if (r["op"], r["sparsity"], r["n"]) == (op, *key)
                and not r["line"].startswith("jsparse") and "median_us" in r]
      if not ours:
        continue
      best = ours[0]
      if op == "spmv":
        if not copy:
          continue
        value = best["gb_per_s"] / copy[0]
      elif theirs:
        value = min(theirs) / best["median_us"]
      else:
        continue
      verdict = "met" if value >= target else f"missed by {target / value:.2f}x"
      lines.append(f"- {op} s={key[0]} N/D={key[1]}: {what} {value:.2f} (target {target}): "
                   f"{verdict} ({best['config']})")
  return "Targets (issue 7), default config (line jsparse-pallas):\n" + "\n".join(lines or ["- none timed"])


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--budget-s", type=float, default=24.0)
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  bench = Bench(args.outdir, args.smoke, args.budget_s)
  matrices = Matrices(np.random.default_rng(0), bench.size)
  for case in plan(bench, matrices, interpret=args.smoke):
    case()
  print(bench.write())
  return 0


if __name__ == "__main__":
  sys.exit(main())
