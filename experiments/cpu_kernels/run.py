"""CPU SpMM benchmark of the C++ kernels against SciPy, torch CSR (MKL), jax.experimental.sparse
BCSR and dense matmul: the table of issue 6, rerunnable in one command.

    python -P experiments/cpu_kernels/run.py            # the whole grid (1-3 min on 2 cores)
    python -P experiments/cpu_kernels/run.py --quick    # 4096x4096 at N = 128 only

torch exists only in /work/venv311 (Python 3.11, torch CPU); for the torch-csr (MKL) column, install
jsparse there from this tree (again after every csrc/ edit: it is a copy, not editable) and run
the script with that interpreter:

    /work/venv311/bin/pip install --no-build-isolation --no-deps --force-reinstall .
    JAX_PLATFORMS=cpu /work/venv311/bin/python -P experiments/cpu_kernels/run.py

Writes ``experiments/cpu_kernels/results/<UTC time>/``: ``results.jsonl`` (one line per case and
line, every timing), ``run.json`` (machine, versions, float32 GEMM peak, load) and ``table.md``.
Every line of a case is timed in the same run, one after the other, with one method: a warm-up
call (compilation excluded), then calls until ``--budget`` seconds or ``--max-reps`` calls, at
least ``--min-reps``; the median is reported. The machine's load average is recorded before and
after each case: timings on a shared machine are only comparable at low load.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gzip
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.sparse

import jsparse
from jsparse import _cpu

HERE = pathlib.Path(__file__).resolve().parent
# Baselines the speedup target is measured against (the best of those that ran).
SPARSE_BASELINES = ("scipy-csr", "torch-csr", "jax-bcsr")
DENSE_LINES = ("jax-dense", "numpy-dense")


@dataclasses.dataclass(frozen=True)
class Case:
  """One sparse matrix A [M, K] (float32 CSR) times a dense [K, N]."""

  source: str  # "uniform" or the DLMC name
  sparsity: float  # nominal
  n: int
  matrix: scipy.sparse.csr_array = dataclasses.field(compare=False, repr=False)

  @property
  def name(self) -> str:
    return f"{self.source} {self.matrix.shape[0]}x{self.matrix.shape[1]} s={self.sparsity} N={self.n}"


# -- the grid, as data --------------------------------------------------------------------------
UNIFORM_SHAPE = (4096, 4096)
SPARSITIES = (0.7, 0.9, 0.98)
NS = (32, 128)
# DLMC matrices per sparsity: the first magnitude-pruned Transformer weight of each shape.
DLMC_SHAPES = ((2048, 512), (512, 512))


def uniform_matrix(rng: np.random.Generator, sparsity: float) -> scipy.sparse.csr_array:
  matrix = scipy.sparse.random_array(UNIFORM_SHAPE, density=1.0 - sparsity, format="csr",
                                     dtype=np.float32, rng=rng,
                                     data_sampler=rng.standard_normal)
  return scipy.sparse.csr_array(matrix)


def dlmc_root() -> pathlib.Path | None:
  for root in (os.environ.get("JSPARSE_DLMC_ROOT"), HERE.parents[2] / "shared" / "data" / "dlmc",
               HERE.parents[1] / "tests" / "data" / "dlmc"):
    if root and (pathlib.Path(root) / "index.csv").exists():
      return pathlib.Path(root)
  return None


def dlmc_matrices(rng: np.random.Generator, sparsities) -> list[tuple[str, float, Any]]:
  """(name, sparsity, CSR float32): per sparsity, the first magnitude-pruned matrix of each of
  DLMC_SHAPES listed in dlmc_root()'s index.csv (none when no DLMC folder is found)."""
  root = dlmc_root()
  if root is None:
    return []
  found, taken = [], set()
  with open(root / "index.csv") as index:
    for row in csv.DictReader(index):
      shape = (int(row["nrows"]), int(row["ncols"]))
      nominal = min(sparsities, key=lambda s: abs(s - float(row["sparsity"])))
      if ("magnitude_pruning" not in row["name"] or shape not in DLMC_SHAPES
          or abs(nominal - float(row["sparsity"])) > 0.01 or (nominal, shape) in taken):
        continue
      path = root / pathlib.Path(row["path"]).relative_to("dlmc")
      path = path if path.exists() else path.with_name(path.name + ".gz")
      if path.exists():
        taken.add((nominal, shape))
        found.append((row["name"], nominal, load_smtx_pattern(path, rng)))
  return found


def load_smtx_pattern(path: pathlib.Path, rng: np.random.Generator) -> scipy.sparse.csr_array:
  """A DLMC ``.smtx`` pattern with standard-normal float32 values."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rt") as f:
    rows, cols, nnz = (int(v) for v in f.readline().split(","))
    offsets = np.array(f.readline().split(), np.int32)
    indices = np.array(f.readline().split(), np.int32)
  data = rng.standard_normal(nnz).astype(np.float32)
  return scipy.sparse.csr_array((data, indices, offsets), shape=(rows, cols))


# -- the lines, as data: each builds a zero-argument callable for a case (or says why not) ------
def _jax_call(fn, *args):
  jitted = jax.jit(fn)
  return lambda: jitted(*args).block_until_ready()


def line_jsparse_ffi(case: Case, b: np.ndarray):
  if not _cpu.AVAILABLE:
    raise RuntimeError(f"jsparse._cpu not built: {_cpu.IMPORT_ERROR}")
  A = jsparse.CSR.from_scipy(case.matrix)
  return _jax_call(lambda A, B: jsparse.spmm(A, B, impl="ffi"), A, jnp.asarray(b))


def line_jax_bcsr(case: Case, b: np.ndarray):
  from jax.experimental import sparse
  A = sparse.BCSR.from_scipy_sparse(scipy.sparse.csr_matrix(case.matrix))
  return _jax_call(lambda A, B: A @ B, A, jnp.asarray(b))


def line_scipy_csr(case: Case, b: np.ndarray):
  matrix = case.matrix
  return lambda: matrix @ b


def line_torch_csr(case: Case, b: np.ndarray):
  import torch  # Optional: the line is skipped (with the reason) where torch is missing.
  m = case.matrix
  A = torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                              torch.from_numpy(m.indices.astype(np.int64)),
                              torch.from_numpy(m.data), size=m.shape)
  B = torch.from_numpy(b)
  return lambda: A @ B


def line_jax_dense(case: Case, b: np.ndarray):
  return _jax_call(lambda A, B: jnp.dot(A, B), jnp.asarray(case.matrix.toarray()), jnp.asarray(b))


def line_numpy_dense(case: Case, b: np.ndarray):
  dense = case.matrix.toarray()
  return lambda: dense @ b


LINES: dict[str, Callable[[Case, np.ndarray], Callable[[], Any]]] = {
    "jsparse-ffi": line_jsparse_ffi,
    "scipy-csr": line_scipy_csr,
    "torch-csr": line_torch_csr,
    "jax-bcsr": line_jax_bcsr,
    "jax-dense": line_jax_dense,
    "numpy-dense": line_numpy_dense,
}


# -- measurement --------------------------------------------------------------------------------
def time_calls(call: Callable[[], Any], budget: float, min_reps: int, max_reps: int) -> list[float]:
  call()  # Warm-up: compilation, caches, lazy initialisation.
  times: list[float] = []
  start = time.perf_counter()
  while len(times) < min_reps or (len(times) < max_reps and time.perf_counter() - start < budget):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
  return times


def float32_gemm_peak(size: int = 2048, reps: int = 5) -> float:
  """The best float32 GEMM rate NumPy reaches here, in GFLOP/s."""
  rng = np.random.default_rng(0)
  a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
  a @ b
  best = min(time_calls(lambda: a @ b, 0.0, reps, reps))
  return 2 * size**3 / best / 1e9


def load_average() -> list[float]:
  return list(os.getloadavg())


def machine_info() -> dict:
  cpu = platform.processor()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  versions = {"python": sys.version.split()[0], "jax": jax.__version__, "numpy": np.__version__,
              "scipy": scipy.__version__}
  try:
    import jaxlib
    versions["jaxlib"] = jaxlib.__version__
  except ImportError:
    pass
  try:
    import torch
    versions["torch"] = torch.__version__
  except ImportError:
    pass
  return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
          "jax_devices": [str(d) for d in jax.devices()], "vector_isa": _cpu.vector_isa(),
          "versions": versions}


def build_cases(quick: bool, seed: int) -> list[Case]:
  rng = np.random.default_rng(seed)
  ns = (128,) if quick else NS
  cases = []
  for sparsity in SPARSITIES:
    matrix = uniform_matrix(rng, sparsity)
    cases += [Case("uniform", sparsity, n, matrix) for n in ns]
  if not quick:
    for name, sparsity, matrix in dlmc_matrices(rng, SPARSITIES):
      cases += [Case(f"dlmc/{name.split('/')[-1]}", sparsity, n, matrix) for n in ns]
  return cases


def run(args) -> pathlib.Path:
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  out_dir = pathlib.Path(args.out) / stamp
  out_dir.mkdir(parents=True, exist_ok=True)
  info = {"date": stamp, "machine": machine_info(), "load_before": load_average(),
          "args": vars(args)}
  info["float32_gemm_peak_gflops"] = float32_gemm_peak()
  print(f"float32 GEMM peak (NumPy, 2048^3): {info['float32_gemm_peak_gflops']:.1f} GFLOP/s; "
        f"load {info['load_before']}", flush=True)
  rng = np.random.default_rng(args.seed + 1)
  records = []
  with open(out_dir / "results.jsonl", "w") as results:
    for case in build_cases(args.quick, args.seed):
      b = rng.standard_normal((case.matrix.shape[1], case.n)).astype(np.float32)
      expected = case.matrix.astype(np.float64) @ b.astype(np.float64)
      scale = abs(case.matrix).astype(np.float64) @ np.abs(b).astype(np.float64)
      load_before = load_average()
      for line in args.lines:
        record = {"case": case.name, "source": case.source, "shape": list(case.matrix.shape),
                  "sparsity": case.sparsity, "nnz": int(case.matrix.nnz), "n": case.n,
                  "dtype": "float32", "line": line}
        try:
          call = LINES[line](case, b)
          out = np.asarray(call())
          record["max_error_over_scale"] = float(np.max(np.abs(out - expected) / (scale + 1e-30)))
          times = time_calls(call, args.budget, args.min_reps, args.max_reps)
          record["times_ms"] = [1e3 * t for t in times]
          record["median_ms"] = 1e3 * statistics.median(times)
          flops = 2.0 * case.matrix.nnz * case.n
          record["gflops"] = flops / statistics.median(times) / 1e9
          record["peak_fraction"] = record["gflops"] / info["float32_gemm_peak_gflops"]
        except Exception as error:  # A line that cannot run here is reported, not fatal.
          record["error"] = f"{type(error).__name__}: {error}"[:300]
        record["load_before"] = load_before
        records.append(record)
        results.write(json.dumps(record) + "\n")
        results.flush()
        shown = (f"{record['median_ms']:9.3f} ms" if "median_ms" in record
                 else f"skipped ({record['error'][:60]})")
        print(f"{case.name:70s} {line:12s} {shown}", flush=True)
  info["load_after"] = load_average()
  (out_dir / "run.json").write_text(json.dumps(info, indent=1))
  (out_dir / "table.md").write_text(table(records, info))
  print(table(records, info))
  return out_dir


def table(records: list[dict], info: dict) -> str:
  """Markdown: one row per case, median ms per line, speedups and fraction of peak."""
  lines = [line for line in LINES if any(r["line"] == line for r in records)]
  ran = {line for line in lines if any("median_ms" in r for r in records if r["line"] == line)}
  machine = info["machine"]
  head = [
      f"CPU SpMM, float32, medians (ms). {machine['cpu']}, {machine['cores']} cores, "
      f"kernels: {machine['vector_isa']}; float32 GEMM peak (NumPy) "
      f"{info['float32_gemm_peak_gflops']:.1f} GFLOP/s; {info['date']}; load average before "
      f"{info['load_before'][0]:.2f}, after {info.get('load_after', [float('nan')])[0]:.2f}.",
      "",
      "| case | nnz | " + " | ".join(lines) + " | speedup vs best sparse baseline | vs best dense "
      "| jsparse % of peak | load |",
      "|---" * (len(lines) + 6) + "|"]
  by_case: dict[str, dict[str, dict]] = {}
  for r in records:
    by_case.setdefault(r["case"], {})[r["line"]] = r
  speedups, dense_wins, fractions = [], [], []
  for case, row in by_case.items():
    ms = {line: row[line].get("median_ms") for line in lines if line in row}
    ours = ms.get("jsparse-ffi")
    baselines = [ms[l] for l in SPARSE_BASELINES if ms.get(l)]
    dense = [ms[l] for l in DENSE_LINES if ms.get(l)]
    speedup = ours and baselines and min(baselines) / ours
    if speedup:
      speedups.append(speedup)
    cells = [f"{ms[l]:.3f}" if ms.get(l) else "-" for l in lines]
    any_record = next(iter(row.values()))
    fraction = row.get("jsparse-ffi", {}).get("peak_fraction")
    lines_row = (f"| {case} | {any_record['nnz']} | " + " | ".join(cells) +
                 f" | {speedup:.2f}x |" if speedup else f"| {case} | {any_record['nnz']} | " +
                 " | ".join(cells) + " | - |")
    lines_row += f" {min(dense) / ours:.2f}x |" if ours and dense else " - |"
    lines_row += f" {100 * fraction:.1f}% |" if fraction else " - |"
    if ours and dense:
      dense_wins.append(min(dense) > ours)
    if fraction:
      fractions.append(fraction)
    lines_row += f" {any_record['load_before'][0]:.2f} |"
    head.append(lines_row)
  if speedups:
    geomean = math.exp(sum(map(math.log, speedups)) / len(speedups))
    head += ["", f"Geometric-mean speedup of jsparse-ffi over the best of "
             f"{', '.join(l for l in SPARSE_BASELINES if l in ran)}: {geomean:.2f}x over "
             f"{len(speedups)} cases (issue 6 target: >= 2x)."]
  if dense_wins:
    head += ["", f"jsparse-ffi faster than the best dense line ({', '.join(DENSE_LINES)}) in "
             f"{sum(dense_wins)} of {len(dense_wins)} cases (target: all, sparsity >= 0.7)."]
  if fractions:
    head += ["", f"jsparse-ffi fraction of the float32 GEMM peak: median "
             f"{100 * statistics.median(fractions):.1f}%, range {100 * min(fractions):.1f}-"
             f"{100 * max(fractions):.1f}%."]
  skipped = sorted({(r["line"], r["error"]) for r in records if "error" in r})
  if skipped:
    head += ["", "Lines that did not run: " + "; ".join(f"{l}: {e}" for l, e in skipped[:5])]
  return "\n".join(head) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="4096x4096 uniform, N = 128 only")
  parser.add_argument("--lines", nargs="+", default=list(LINES), choices=list(LINES))
  parser.add_argument("--budget", type=float, default=1.0, help="seconds of calls per line")
  parser.add_argument("--min-reps", type=int, default=5)
  parser.add_argument("--max-reps", type=int, default=50)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=str(HERE / "results"))
  run(parser.parse_args(argv))


if __name__ == "__main__":
  main()
