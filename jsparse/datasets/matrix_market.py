"""Matrix Market (``.mtx``) files, as in the SuiteSparse collection, read through SciPy."""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

from jsparse.datasets import _build
from jsparse.formats.base import SparseMatrix
from jsparse.formats.csr import CSR


def load_matrix_market(path: str | os.PathLike, *, seed: int = 0, dtype: Any = np.float32,
                       format: str = "csr") -> SparseMatrix:
  """Reads a real, integer or pattern Matrix Market matrix (needs SciPy).

  Args:
    path: the ``.mtx`` file (``.mtx.gz`` too: SciPy opens both).
    seed: seed of the standard normal values drawn for a pattern file (which stores none);
      unused otherwise.
    dtype: value dtype. format: "csr" or "coo".

  Returns:
    CSR (or COO) [M, K] with the file's entries (symmetric files expanded, duplicates summed,
    explicit zeros kept).

  Raises:
    ValueError: for a complex matrix.
  """
  import scipy.io  # an optional dependency (test and bench extras)
  import scipy.sparse

  _build.check_format(format, _build.UNSTRUCTURED_FORMATS)
  field = scipy.io.mminfo(path)[4]
  if field == "complex":
    raise ValueError(f"{path}: holds a complex matrix; jsparse matrices are real")
  # float32 unless float64 is asked for: jnp.asarray would narrow float64 without jax_enable_x64.
  read_dtype = np.float64 if jnp.dtype(dtype) == np.float64 else np.float32
  with warnings.catch_warnings():
    # SciPy 1.18 warns that mmread will return a sparse array; either kind is converted below,
    # and SciPy < 1.18 has no ``spmatrix`` argument to choose.
    warnings.filterwarnings("ignore", "The default value for `spmatrix`", DeprecationWarning)
    read = scipy.io.mmread(path)
  csr = CSR.from_scipy(scipy.sparse.csr_array(read, dtype=read_dtype))
  if field == "pattern":
    values = _build.normal_values(np.random.default_rng(seed), csr.nse, dtype)
  else:
    values = csr.data.astype(dtype)
  return _build.to_format(csr.with_data(values), format)
