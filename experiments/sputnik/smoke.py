"""GPU correctness smoke of the Sputnik binding: SpMM and SDDMM against float64 NumPy.

    python3 -P experiments/sputnik/smoke.py        # after experiments/sputnik/build.sh; needs a GPU

Covers every kernel variant Sputnik's float32 heuristics pick (SpMM by N: odd, even, multiples of
4 below / at 8 and 16, 32, multiples of 64, other multiples of 4; SDDMM by the inner dimension D:
odd, even, multiples of 4 and of 32, and D = 0) on ragged matrices (empty rows, rows longer than
a 32-wide tile at unaligned offsets), nnz = 0, a single row, non-square shapes, and one launch on a
side stream. Outputs start as NaN, so an entry left unwritten fails. Fresh random data each run;
prints one line per case and exits 1 if any is wrong.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import scipy.sparse

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
  sys.path.append(str(REPO_ROOT))

import torch  # noqa: E402  (before the library: one CUDA context for both)

from experiments.sputnik import binding  # noqa: E402

TOLERANCE = 1e-5
SPMM_NS = (1, 2, 3, 4, 8, 12, 16, 20, 32, 35, 50, 64, 96, 128, 1024)
SDDMM_DS = (0, 1, 2, 3, 4, 6, 32, 33, 36, 66, 128)


def ragged(rng: np.random.Generator, rows: int, cols: int) -> scipy.sparse.csr_matrix:
  """Rows of 0 to ``cols`` nonzeros (a third empty, a few nearly full), random columns."""
  lengths = rng.choice([0, 1, 3, 31, 33, 70, cols], size=rows,
                       p=[0.3, 0.15, 0.15, 0.1, 0.1, 0.1, 0.1])
  lengths = np.minimum(lengths, cols)
  indices = [np.sort(rng.choice(cols, size=length, replace=False)) for length in lengths]
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  columns = np.concatenate(indices + [np.zeros(0, np.int64)])
  values = rng.standard_normal(offsets[-1]).astype(np.float32)
  return scipy.sparse.csr_matrix((values, columns, offsets), shape=(rows, cols))


def uniform(rng: np.random.Generator, rows: int, cols: int,
            density: float) -> scipy.sparse.csr_matrix:
  return scipy.sparse.random(rows, cols, density=density, format="csr", dtype=np.float32,
                             random_state=rng)


def matrices(rng: np.random.Generator) -> dict[str, scipy.sparse.csr_matrix]:
  return {
      "ragged 257x193": ragged(rng, 257, 193),
      "ragged 64x1000": ragged(rng, 64, 1000),
      "nnz=0 5x7": scipy.sparse.csr_matrix((5, 7), dtype=np.float32),
      "one row 1x300": uniform(rng, 1, 300, 0.5),
      "uniform 4096x4096 s=0.98": uniform(rng, 4096, 4096, 0.02),
  }


def device_csr(matrix: scipy.sparse.csr_matrix) -> tuple[binding.SputnikCsr, binding.DeviceCsr]:
  host = binding.SputnikCsr.from_csr(matrix.indptr, matrix.indices, matrix.data, matrix.shape)
  arrays = (host.values, host.column_indices, host.row_offsets, host.row_indices)
  return host, binding.DeviceCsr(host.shape, host.nnz,
                                 *(torch.from_numpy(a).cuda() for a in arrays))


def relative_error(out: np.ndarray, expected: np.ndarray) -> float:
  scale = np.linalg.norm(expected)
  error = float(np.linalg.norm(out.astype(np.float64) - expected) / (scale if scale else 1.0))
  return error if np.isfinite(error) else float("inf")


def check_spmm(matrix, n, rng, stream=None) -> float:
  host, csr = device_csr(matrix)
  dense = torch.from_numpy(rng.standard_normal((matrix.shape[1], n)).astype(np.float32)).cuda()
  out = torch.full((matrix.shape[0], n), float("nan"), device="cuda")
  torch.cuda.synchronize()  # the copies above ran on the current stream, maybe not `stream`
  binding.Spmm(csr, dense, out, (stream or torch.cuda.current_stream()).cuda_stream)()
  torch.cuda.synchronize()
  expected = matrix.astype(np.float64) @ dense.cpu().numpy().astype(np.float64)
  return relative_error(out.cpu().numpy(), expected)


def check_sddmm(matrix, depth, rng) -> float:
  host, csr = device_csr(matrix)
  lhs = rng.standard_normal((matrix.shape[0], depth)).astype(np.float32)
  rhs = rng.standard_normal((matrix.shape[1], depth)).astype(np.float32)
  out = torch.full((host.nnz,), float("nan"), device="cuda")
  binding.Sddmm(csr, torch.from_numpy(lhs).cuda(), torch.from_numpy(rhs).cuda(), out,
                torch.cuda.current_stream().cuda_stream)()
  torch.cuda.synchronize()
  rows, columns = host.entry_rows(), host.column_indices
  expected = np.einsum("ed,ed->e", lhs[rows].astype(np.float64), rhs[columns].astype(np.float64))
  return relative_error(out.cpu().numpy(), expected)


def main() -> int:
  rng = np.random.default_rng()
  failures = 0

  def report(label: str, error: float) -> None:
    nonlocal failures
    ok = error <= TOLERANCE
    failures += not ok
    print(f"{'ok   ' if ok else 'WRONG'} {label}: relative error {error:.2e}", flush=True)

  for name, matrix in matrices(rng).items():
    big = matrix.shape[0] >= 4096
    for n in (128,) if big else SPMM_NS:
      report(f"spmm  {name} nnz={matrix.nnz} N={n}", check_spmm(matrix, n, rng))
    for depth in (32,) if big else SDDMM_DS:  # the float64 reference gathers nnz x D twice
      report(f"sddmm {name} nnz={matrix.nnz} D={depth}", check_sddmm(matrix, depth, rng))
  report("spmm  ragged 257x193 N=64 on a side stream",
         check_spmm(ragged(rng, 257, 193), 64, rng, torch.cuda.Stream()))
  print(f"{failures} wrong" if failures else "all ok")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
