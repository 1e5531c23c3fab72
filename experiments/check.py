"""Correctness before timing: every line's output against a float64 NumPy/SciPy reference.

The reference is computed from the case's values as stored (already rounded to the case's dtype)
and widened to float64, so a line's error is its own rounding and accumulation error. The error is
the relative Frobenius norm ``||out - ref|| / ||ref||`` over the checked entries of the dense
result ([M, N]; SDDMM: [M, K] with the sampled values at the pattern and zeros elsewhere).

Large problems are checked on a sample, so that a float64 reference on one CPU core stays cheap
next to the timing: at most ``MAX_CHECKED_ROWS`` rows (the first, the last and a seeded random
set) and, for SpMM, at most ``MAX_CHECKED_COLUMNS`` columns of the output. Smaller problems are
checked whole.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from experiments.problems import Problem

# Relative error allowed per compute dtype.
TOLERANCES = {"float32": 1e-4, "bfloat16": 2e-2, "float16": 1e-2}
# Float32 products on GPU may run in TF32 (10-bit mantissa) on tensor cores.
TF32_TOLERANCE = 1e-2
MAX_CHECKED_ROWS = 1024
MAX_CHECKED_COLUMNS = 128
SAMPLE_SEED = 2


@dataclasses.dataclass(frozen=True)
class Reference:
  """The float64 result on the checked rows (None: all) and columns (None: all) of the full
  output ``shape``."""

  values: np.ndarray
  rows: np.ndarray | None
  columns: np.ndarray | None
  shape: tuple[int, ...]

  def select(self, out: np.ndarray) -> np.ndarray:
    """The checked entries of a line's full dense output."""
    if self.rows is not None:
      out = out[self.rows]
    if self.columns is not None:
      out = out[:, self.columns]
    return out


@dataclasses.dataclass(frozen=True)
class Verdict:
  ok: bool
  error: float
  tolerance: float
  problem: str = ""

  def message(self) -> str:
    return self.problem or f"relative error {self.error:.3g} > tolerance {self.tolerance:g}"


def _sample(size: int, limit: int) -> np.ndarray | None:
  if size <= limit:
    return None
  rng = np.random.default_rng(SAMPLE_SEED)
  inner = rng.choice(np.arange(1, size - 1), limit - 2, replace=False)
  return np.sort(np.concatenate([[0, size - 1], inner]))


def reference(problem: Problem) -> Reference:
  """The float64 result of the problem's op on the checked rows and columns."""
  matrix = problem.matrix.to_scipy().tocsr().astype(np.float64)
  operands = [np.asarray(op, dtype=np.float64) for op in problem.operands]
  rows = _sample(problem.shape[0], MAX_CHECKED_ROWS)
  if rows is not None:
    matrix = matrix[rows]
  op, num_rows = problem.case.op, problem.shape[0]
  if op == "spmv":
    return Reference(np.asarray(matrix @ operands[0]), rows, None, (num_rows,))
  if op == "spmm":
    columns = _sample(problem.case.n, MAX_CHECKED_COLUMNS)
    dense = operands[0] if columns is None else operands[0][:, columns]
    return Reference(np.asarray(matrix @ dense), rows, columns, (num_rows, problem.case.n))
  x, y = operands
  if rows is not None:
    x = x[rows]
  coo = matrix.tocoo()
  out = np.zeros(matrix.shape)
  # Chunks of entries bound the [entries, D] gathers to ~256 MB.
  chunk = max(1, (1 << 25) // max(1, x.shape[1]))
  for start in range(0, coo.nnz, chunk):
    r, c = coo.row[start:start + chunk], coo.col[start:start + chunk]
    out[r, c] = np.einsum("ed,ed->e", x[r], y[c])
  return Reference(out, rows, None, problem.shape)


def tolerance(compute_dtype: str, *, on_gpu: bool, tf32: bool) -> float:
  """The relative error allowed to a line computing in ``compute_dtype``."""
  allowed = TOLERANCES[compute_dtype]
  if compute_dtype == "float32" and on_gpu and tf32:
    allowed = max(allowed, TF32_TOLERANCE)
  return allowed


def compare(out: np.ndarray, expected: Reference, allowed: float) -> Verdict:
  """Relative Frobenius error of a line's full dense output (any float dtype) on the checked
  entries."""
  out = np.asarray(out)
  if out.shape != expected.shape:
    return Verdict(False, float("inf"), allowed,
                   f"output shape {out.shape}, expected {expected.shape}")
  checked = expected.select(out).astype(np.float64)
  scale = np.linalg.norm(expected.values)
  error = float(np.linalg.norm(checked - expected.values) / (scale if scale > 0 else 1.0))
  if not np.isfinite(error):
    error = float("inf")
  return Verdict(error <= allowed, error, allowed)
