"""The Deep Learning Matrix Collection (DLMC): list its matrices, filter them, load one.

A DLMC folder holds ``index.csv`` and the ``.smtx`` patterns under ``<model>/<pruning method>/
<sparsity>/``; see ``jsparse/io/smtx.py`` for the file format.

References:
  Gale, Zaharia, Young, Elsen. "Sparse GPU Kernels for Deep Learning", SC 2020, arXiv 2006.10901.
  Gale, Elsen, Hooker. "The State of Sparsity in Deep Neural Networks", arXiv 1902.09574.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from jsparse.datasets import _build
from jsparse.formats.base import SparseMatrix
from jsparse.io.smtx import load_dlmc_index, load_smtx

PathLike = str | os.PathLike
ROOT_ENV_VAR = "JSPARSE_DLMC_ROOT"
# Where a checkout finds the project's DLMC subset, <repo>/../shared/data/dlmc: next to the source
# tree, or next to the working directory when jsparse is installed and run from the repository.
CHECKOUT_ROOTS = (
    pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "dlmc",
    pathlib.Path.cwd().resolve().parent / "shared" / "data" / "dlmc",
)


@dataclasses.dataclass(frozen=True)
class DLMCEntry:
  """One matrix of a DLMC index.

  Attributes:
    path: the ``.smtx`` (or ``.smtx.gz``) file.
    name: the collection's name, e.g. ``"transformer/magnitude_pruning/0.9/body_..._k"``.
    model: e.g. ``"transformer"`` or ``"rn50"``.
    pruning: the pruning method, e.g. ``"magnitude_pruning"`` or ``"random_pruning"``.
    sparsity: the nominal sparsity of the folder (0.9), not the measured one (0.900001...).
    nrows, ncols, nnz: the matrix's shape and number of nonzeros.
  """

  path: pathlib.Path
  name: str
  model: str
  pruning: str
  sparsity: float
  nrows: int
  ncols: int
  nnz: int

  @property
  def shape(self) -> tuple[int, int]:
    return (self.nrows, self.ncols)


def default_dlmc_root() -> pathlib.Path | None:
  """The DLMC folder to use when none is given, or None when there is none.

  ``$JSPARSE_DLMC_ROOT`` when set, else ``<repo>/../shared/data/dlmc`` of a checkout (beside the
  source tree, or beside the working directory for an installed package).

  Raises:
    FileNotFoundError: when ``$JSPARSE_DLMC_ROOT`` is set but holds no ``index.csv``.
  """
  if os.environ.get(ROOT_ENV_VAR):
    root = pathlib.Path(os.environ[ROOT_ENV_VAR])
    if not (root / "index.csv").is_file():
      raise FileNotFoundError(f"${ROOT_ENV_VAR} is {str(root)!r}, which holds no index.csv")
    return root
  return next((root for root in CHECKOUT_ROOTS if (root / "index.csv").is_file()), None)


def list_dlmc(root: PathLike | None = None, *, model: str | Iterable[str] | None = None,
              pruning: str | Iterable[str] | None = None,
              sparsity: float | Iterable[float] | None = None,
              shapes: Iterable[Sequence[int]] | None = None) -> list[DLMCEntry]:
  """The matrices of a DLMC folder's ``index.csv`` that pass every given filter, in index order.

  Args:
    root: the folder holding ``index.csv`` (paths in it are relative to its parent); None:
      ``default_dlmc_root()``.
    model: a model name or several, e.g. "transformer".
    pruning: a pruning method or several, e.g. "magnitude_pruning".
    sparsity: a nominal sparsity or several, e.g. 0.9 or (0.9, 0.98).
    shapes: the (nrows, ncols) pairs to keep, e.g. [(512, 512)].

  Raises:
    FileNotFoundError: when root is None and there is no default DLMC folder.
  """
  if root is None:
    root = default_dlmc_root()
    if root is None:
      raise FileNotFoundError(f"no DLMC folder: pass root or set ${ROOT_ENV_VAR}")
  entries = [_entry(row) for row in load_dlmc_index(root)]
  if model is not None:
    entries = [e for e in entries if e.model in _as_set(model)]
  if pruning is not None:
    entries = [e for e in entries if e.pruning in _as_set(pruning)]
  if sparsity is not None:
    wanted = [float(s) for s in np.atleast_1d(sparsity)]
    entries = [e for e in entries if any(math.isclose(e.sparsity, s) for s in wanted)]
  if shapes is not None:
    wanted_shapes = {tuple(int(size) for size in shape) for shape in shapes}
    entries = [e for e in entries if e.shape in wanted_shapes]
  return entries


def load_dlmc(entry: DLMCEntry, *, seed: int = 0, dtype: Any = np.float32,
              format: str = "csr") -> SparseMatrix:
  """A DLMC matrix with seeded standard normal values.

  Args:
    entry: from ``list_dlmc``.
    seed: seed of the values (the pattern is the file's).
    dtype: value dtype. format: "csr" or "coo".

  Returns:
    CSR (or COO) [nrows, ncols] with ``entry.nnz`` values.

  Raises:
    ValueError: when the file does not match the index's shape or nnz.
  """
  _build.check_format(format, _build.UNSTRUCTURED_FORMATS)
  matrix = load_smtx(entry.path, seed=seed, dtype=dtype)
  if matrix.shape != entry.shape or matrix.nse != entry.nnz:
    raise ValueError(f"{entry.path}: holds a {matrix.shape} matrix with nnz={matrix.nse}, but the "
                     f"index says {entry.shape} with nnz={entry.nnz}")
  return _build.to_format(matrix, format)


def _entry(row: dict[str, Any]) -> DLMCEntry:
  """A DLMCEntry of an index row; the name reads ``<model>/<pruning>/<sparsity>/<layer>``."""
  _, pruning, sparsity, *_ = row["name"].split("/")
  return DLMCEntry(path=row["file"], name=row["name"], model=row["model"], pruning=pruning,
                   sparsity=float(sparsity), nrows=row["nrows"], ncols=row["ncols"],
                   nnz=row["nnz"])


def _as_set(names: str | Iterable[str]) -> set[str]:
  return {names} if isinstance(names, str) else set(names)
