"""DLMC ``.smtx`` files: sparsity patterns in CSR form, plain or gzip-compressed.

A ``.smtx`` file of the Deep Learning Matrix Collection holds three lines:

- line 1: ``nrows, ncols, nnz``
- line 2: the nrows + 1 row offsets (CSR indptr), separated by spaces
- line 3: the nnz column indices, row by row, separated by spaces

Only the pattern is stored; ``load_smtx`` draws the values from a seeded generator.

References:
  Gale, Zaharia, Young, Elsen. "Sparse GPU Kernels for Deep Learning", SC 2020, arXiv 2006.10901.
"""

from __future__ import annotations

import csv
import gzip
import os
import pathlib
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation
from jsparse.formats.base import SparseMatrix
from jsparse.formats.csr import CSR

PathLike = str | os.PathLike
GZIP_MAGIC = b"\x1f\x8b"
# Value distributions of load_smtx: a [nnz] float64 sample from a NumPy generator.
VALUE_SAMPLERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": lambda rng, size: rng.standard_normal(size),
    "uniform": lambda rng, size: rng.uniform(-1.0, 1.0, size),
}
# index.csv columns that hold counts (written as floats, e.g. "131072.0") or statistics.
_INT_COLUMNS = ("nrows", "ncols", "nnz")
_FLOAT_COLUMNS = ("quality", "mean_nnz_per_row", "std_nnz_per_row", "mean_nnz_per_col",
                  "std_nnz_per_col", "sparsity")


def load_smtx(path: PathLike, *, seed: int = 0, dtype: Any = np.float32,
              values: str = "normal") -> CSR:
  """Reads a DLMC ``.smtx`` pattern (plain or gzip, told apart by content) as a CSR matrix.

  Args:
    path: the ``.smtx`` or ``.smtx.gz`` file.
    seed: seed of ``np.random.default_rng`` that draws the values; the same seed gives the same
      values for the same pattern.
    dtype: value dtype (float16, bfloat16, float32 or float64).
    values: ``"normal"`` (standard normal) or ``"uniform"`` (uniform in [-1, 1)).

  Returns:
    CSR [nrows, ncols] with ``nse == nnz`` (no padding); int32 indices unless a size needs int64.

  Raises:
    ValueError: naming the file, when it is malformed (wrong header, wrong number of row offsets or
      column indices, offsets that do not end at nnz, or indices the CSR checks reject).
  """
  if values not in VALUE_SAMPLERS:
    raise ValueError(f"values must be one of {sorted(VALUE_SAMPLERS)}, got {values!r}")
  num_rows, num_cols, row_offsets, col_indices = _read_pattern(path)
  nnz = col_indices.shape[0]
  data = VALUE_SAMPLERS[values](np.random.default_rng(seed), nnz).astype(jnp.dtype(dtype))
  try:
    index_dtype = validation.index_dtype_for(num_rows, num_cols, nnz)
    # Range checks before the cast to index_dtype, which would wrap huge values into range.
    validation.check_in_range("row_offsets", row_offsets, 0, nnz + 1)
    validation.check_in_range("col_indices", col_indices, 0, num_cols)
    return CSR((data, col_indices.astype(index_dtype), row_offsets.astype(index_dtype)),
               shape=(num_rows, num_cols))
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from None


def save_smtx(path: PathLike, matrix: SparseMatrix) -> None:
  """Writes the pattern of ``matrix`` (its stored entries, padding dropped) as a ``.smtx`` file.

  Args:
    path: destination; gzip-compressed when it ends in ``.gz``.
    matrix: any jsparse matrix [M, K]; it is converted to CSR, and every stored entry (explicit
      zeros included) becomes part of the pattern. Values are not written.
  """
  csr = matrix.tocsr()
  row_offsets = np.asarray(csr.row_offsets)
  col_indices = np.asarray(csr.col_indices)[:int(row_offsets[-1])]
  num_rows, num_cols = csr.shape
  text = (f"{num_rows}, {num_cols}, {col_indices.shape[0]}\n"
          f"{' '.join(map(str, row_offsets.tolist()))}\n"
          f"{' '.join(map(str, col_indices.tolist()))}\n").encode()
  path = pathlib.Path(path)
  if path.suffix == ".gz":
    # mtime=0: the same pattern always gives the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as file:
      file.write(text)
  else:
    path.write_bytes(text)


def load_dlmc_index(root: PathLike) -> list[dict[str, Any]]:
  """The rows of a DLMC ``index.csv``, with numbers parsed and each matrix's file located.

  Args:
    root: the folder that holds ``index.csv`` (the collection's ``dlmc`` folder); each row's
      ``path`` is relative to the parent of ``root``.

  Returns:
    One dict per row with the CSV's columns (``model``, ``path``, ``name`` as str; ``nrows``,
    ``ncols``, ``nnz`` as int; ``quality``, the per-row / per-column statistics and ``sparsity`` as
    float) plus ``file``: the ``pathlib.Path`` of the matrix, ``path`` + ``.gz`` when that exists.
  """
  root = pathlib.Path(root)
  with open(root / "index.csv", newline="") as index_file:
    rows = list(csv.DictReader(index_file))
  for row in rows:
    for column in _INT_COLUMNS:
      row[column] = int(float(row[column]))
    for column in _FLOAT_COLUMNS:
      if column in row:
        row[column] = float(row[column])
    plain = root.parent / row["path"]
    compressed = plain.with_name(plain.name + ".gz")
    row["file"] = compressed if compressed.exists() else plain
  return rows


def _read_pattern(path: PathLike) -> tuple[int, int, np.ndarray, np.ndarray]:
  """(nrows, ncols, row_offsets int64 [nrows + 1], col_indices int64 [nnz]) of a ``.smtx``."""
  raw = pathlib.Path(path).read_bytes()
  if raw[:2] == GZIP_MAGIC:
    raw = gzip.decompress(raw)
  lines = raw.splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise ValueError(f"{path}: the file is empty, expected a header line 'nrows, ncols, nnz'")
  header = _parse_ints(path, "the header", lines[0].replace(b",", b" "))
  if header.shape[0] != 3 or (header < 0).any():
    raise ValueError(f"{path}: the header must be three non-negative ints 'nrows, ncols, nnz', "
                     f"got {lines[0].decode(errors='replace')!r}")
  num_rows, num_cols, nnz = (int(n) for n in header)
  # A pattern with nnz = 0 may end after the row offsets.
  if len(lines) == 2 and nnz == 0:
    lines.append(b"")
  if len(lines) != 3:
    raise ValueError(f"{path}: expected 3 lines (header, row offsets, column indices), got "
                     f"{len(lines)}")
  row_offsets = _parse_ints(path, "the row offsets", lines[1])
  col_indices = _parse_ints(path, "the column indices", lines[2])
  if row_offsets.shape[0] != num_rows + 1:
    raise ValueError(f"{path}: row offsets has {row_offsets.shape[0]} entries, expected "
                     f"nrows+1 = {num_rows + 1}")
  if col_indices.shape[0] != nnz:
    raise ValueError(f"{path}: column indices has {col_indices.shape[0]} entries, expected "
                     f"nnz = {nnz} (from the header)")
  if row_offsets[-1] != nnz:
    raise ValueError(f"{path}: the last row offset is {int(row_offsets[-1])}, expected "
                     f"nnz = {nnz} (from the header)")
  return num_rows, num_cols, row_offsets, col_indices


def _parse_ints(path: PathLike, what: str, line: bytes) -> np.ndarray:
  """The whitespace-separated integers of one line, int64 [n]."""
  if not line.strip():
    return np.zeros(0, np.int64)
  try:
    # About 6x faster than splitting; huge values saturate and fail the range checks later.
    return np.fromstring(line, dtype=np.int64, sep=" ")
  except ValueError:
    bad = next((token for token in line.split() if not token.lstrip(b"+-").isdigit()), b"?")
    raise ValueError(f"{path}: {what} must be integers, found {bad.decode(errors='replace')!r}"
                     ) from None
