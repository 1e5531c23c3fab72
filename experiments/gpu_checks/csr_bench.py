"""Times the Pallas CSR kernels (issue 7) against the baselines on a 4096x4096 uniform matrix.

SpMM at s in {0.7, 0.9, 0.98} x N in {32, 128, 1024} against dense fp32 (precision highest),
torch CSR (cuSPARSE) and jax.experimental.sparse BCSR; SDDMM (s = 0.9, D in {32, 128, 1024})
against torch.sparse.sampled_addmm; SpMV against the measured copy bandwidth. Every jsparse
result is checked against a float32 HIGHEST dense product before it is timed. Per-case errors are
recorded and the run goes on; cases stop once the time budget is spent.

  python3 -P experiments/gpu_checks/csr_bench.py OUTDIR [--smoke] [--budget-s 90]

Writes OUTDIR/csr_bench.json and OUTDIR/csr_bench.md and prints the table last. ``--smoke``:
tiny shapes, Pallas interpret mode, on whatever platform JAX has (checks this script on a CPU).
"""

from __future__ import annotations

import argparse
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
from pallas_kernels import _rows, csr_sddmm, csr_spmm, csr_spmv

HIGHEST = jax.lax.Precision.HIGHEST


def uniform_csr(rng, size: int, sparsity: float):
  dense = np.where(rng.random((size, size)) >= sparsity,
                   rng.standard_normal((size, size)), 0).astype(np.float32)
  rows, cols = np.nonzero(dense)
  offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=size))]).astype(np.int32)
  return dense, dense[rows, cols], cols.astype(np.int32), offsets


def rel_error(actual, expected) -> float:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.max(np.abs(actual - expected)) / (np.max(np.abs(expected)) + 1e-30))


class Bench:
  def __init__(self, outdir: pathlib.Path, smoke: bool, budget_s: float):
    self.outdir, self.smoke, self.budget_s = outdir, smoke, budget_s
    self.start = time.perf_counter()
    self.config = timing.TimingConfig(repeats=5, min_repeats=3, max_total_s=0.3,
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
        traceback.print_exc(limit=3)
    print(json.dumps(row), flush=True)
    self.rows.append(row)
    self.write()  # after every case: a run killed by its time limit keeps what it measured

  def write(self) -> str:
    meta = dict(device=str(jax.devices()[0]), jax=jax.__version__, smoke=self.smoke,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                torch=getattr(self.torch, "__version__", None),
                elapsed_s=time.perf_counter() - self.start)
    (self.outdir / "csr_bench.json").write_text(json.dumps(dict(meta=meta, rows=self.rows),
                                                           indent=1))
    text = f"# CSR kernels, {meta['device']}, {meta['date']}\n\n{table(self.rows)}\n"
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


def run_spmm(bench: Bench, size: int, sparsities, widths, interpret: bool, rng) -> None:
  for sparsity in sparsities:
    dense, data, cols, offsets = uniform_csr(rng, size, sparsity)
    a_dense = jnp.asarray(dense)
    csr = tuple(jnp.asarray(x) for x in (data, cols, offsets))
    order = _rows.rows_by_length(csr[2])
    for n in widths:
      case = dict(op="spmm", m=size, k=size, n=n, sparsity=sparsity, nnz=int(data.size),
                  dtype="float32", config=str(csr_spmm.choose_config(size, size, n, data.size)))
      b = jnp.asarray(rng.standard_normal((size, n)).astype(np.float32))
      expected = np.asarray(jnp.matmul(a_dense, b, precision=HIGHEST))
      pallas = lambda d, c, o, b: csr_spmm.kernel_fn(d, c, o, b, num_rows=size,
                                                     interpret=interpret)
      bench.record(case, "jsparse-pallas",
                   lambda: bench.jax_timed(pallas, (*csr, b), expected))
      cached = lambda d, c, o, b, r: csr_spmm.kernel_fn(d, c, o, b, num_rows=size, row_order=r,
                                                        interpret=interpret)
      bench.record(case, "jsparse-pallas-cached-order",
                   lambda: bench.jax_timed(cached, (*csr, b, order), expected))
      bench.record(case, "dense-fp32", lambda: bench.jax_timed(
          lambda a, b: jnp.matmul(a, b, precision=HIGHEST), (a_dense, b)))
      if not bench.smoke:
        bench.record(case, "jax-bcsr", lambda: _bcsr(bench, dense, b))
      if bench.torch is not None:
        bench.record(case, "torch-csr", lambda: _torch_spmm(bench, dense, b))


def _bcsr(bench: Bench, dense, b):
  from jax.experimental import sparse as jsp
  matrix = jsp.BCSR.fromdense(jnp.asarray(dense))
  return bench.jax_timed(lambda m, b: m @ b, (matrix, b))


def _torch_spmm(bench: Bench, dense, b):
  torch = bench.torch
  a = torch.from_numpy(dense).cuda().to_sparse_csr()
  tb = torch.from_numpy(np.asarray(b)).cuda()
  return bench.torch_timed(lambda: a @ tb)


def run_sddmm(bench: Bench, size: int, sparsity: float, inners, interpret: bool, rng) -> None:
  dense, data, cols, offsets = uniform_csr(rng, size, sparsity)
  rows = np.repeat(np.arange(size), np.diff(offsets))
  index = tuple(jnp.asarray(x) for x in (cols, offsets))
  for inner in inners:
    case = dict(op="sddmm", m=size, k=size, n=inner, sparsity=sparsity, nnz=int(data.size),
                dtype="float32", config=str(csr_sddmm.choose_config(size, data.size, inner)))
    x = rng.standard_normal((size, inner)).astype(np.float32)
    y = rng.standard_normal((size, inner)).astype(np.float32)
    expected = np.einsum("ed,ed->e", x[rows].astype(np.float64), y[cols].astype(np.float64))
    pallas = lambda c, o, x, y: csr_sddmm.kernel_fn(c, o, x, y, num_rows=size,
                                                    interpret=interpret)
    bench.record(case, "jsparse-pallas", lambda: bench.jax_timed(
        pallas, (*index, jnp.asarray(x), jnp.asarray(y)), expected))
    if bench.torch is not None:
      bench.record(case, "torch-sampled-addmm", lambda: _torch_sddmm(bench, dense, x, y))


def _torch_sddmm(bench: Bench, dense, x, y):
  torch = bench.torch
  pattern = torch.from_numpy(dense).cuda().to_sparse_csr()
  tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
  return bench.torch_timed(lambda: torch.sparse.sampled_addmm(pattern, tx, ty.T, beta=0.0))


def run_spmv(bench: Bench, size: int, sparsities, interpret: bool, rng) -> None:
  words = (size * size) if not bench.smoke else 1 << 16
  source = jnp.asarray(rng.standard_normal(words).astype(np.float32))
  copy_case = dict(op="copy", m=words, k=1, n=1, sparsity=0.0, nnz=words, dtype="float32")
  bench.record(copy_case, "jnp-copy", lambda: _with_bandwidth(
      bench.jax_timed(lambda s: s * 2.0, (source,)), 8 * words))
  for sparsity in sparsities:
    dense, data, cols, offsets = uniform_csr(rng, size, sparsity)
    case = dict(op="spmv", m=size, k=size, n=1, sparsity=sparsity, nnz=int(data.size),
                dtype="float32", config=str(csr_spmv.choose_config(size, data.size)))
    vector = rng.standard_normal(size).astype(np.float32)
    expected = dense.astype(np.float64) @ vector
    nbytes = 8 * data.size + 4 * (size + 1) + 8 * size  # values, columns, offsets, x, y
    pallas = lambda d, c, o, v: csr_spmv.kernel_fn(d, c, o, v, num_rows=size,
                                                   interpret=interpret)
    operands = (*(jnp.asarray(x) for x in (data, cols, offsets)), jnp.asarray(vector))
    bench.record(case, "jsparse-pallas", lambda: _with_bandwidth(
        bench.jax_timed(pallas, operands, expected), nbytes))


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
    note = row.get("error", "")
    if row["op"] == "spmv" and copy and "gb_per_s" in row:
      note = f"{row['gb_per_s']:.0f} GB/s = {100 * row['gb_per_s'] / copy[0]:.0f}% of copy"
    lines.append(f"| {row['op']} | {row['sparsity']} | {row['n']} | {row['line']} | "
                 f"{'' if median is None else f'{median:.1f}'} | {speedup} | {note} |")
  if copy:
    lines.append(f"\ncopy bandwidth (jnp, read + write): {copy[0]:.0f} GB/s")
  return "\n".join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--budget-s", type=float, default=90.0)
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  bench = Bench(args.outdir, args.smoke, args.budget_s)
  interpret = args.smoke
  rng = np.random.default_rng(0)
  size = 64 if args.smoke else 4096
  widths = (8,) if args.smoke else (32, 128, 1024)
  # Most telling first: cases left when the time budget runs out are the least important.
  sparsities = (0.9,) if args.smoke else (0.9, 0.98, 0.7)
  run_spmv(bench, size, sparsities, interpret, rng)
  run_sddmm(bench, size, 0.9, (8,) if args.smoke else (32, 128, 1024), interpret, rng)
  run_spmm(bench, size, sparsities, widths, interpret, rng)
  print(bench.write())
  return 0


if __name__ == "__main__":
  sys.exit(main())
