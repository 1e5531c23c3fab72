"""A case's concrete problem: the sparse matrix of its source and format, and the dense operands.

Values are seeded (matrix seed 0, dense operands seed 1), so every line of a case, and every run,
sees the same numbers. Everything here is host data (NumPy / jsparse on the default device); the
lines move it where they compute.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax.numpy as jnp
import numpy as np

import jsparse
from jsparse import datasets

from experiments import grid
from experiments.grid import Case

MATRIX_SEED = 0
OPERAND_SEED = 1


@dataclasses.dataclass
class Problem:
  """What every line of one case computes on.

  Attributes:
    case: the case.
    matrix: the jsparse matrix A [M, K] of ``case.format`` and ``case.dtype``.
    operands: the dense operands, NumPy arrays of ``case.dtype``: ``(B [K, N],)`` for spmm,
      ``(x [K],)`` for spmv, ``(X [M, n], Y [K, n])`` for sddmm.
    pattern: how A's pattern was made, e.g. "dlmc transformer/magnitude_pruning/0.9/body_..."
      or "random 2:4".
    nnz: stored values of A (the useful multiply-adds per output column).
  """

  case: Case
  matrix: jsparse.SparseMatrix
  operands: tuple[np.ndarray, ...]
  pattern: str
  nnz: int

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.matrix.shape)

  @property
  def dtype(self) -> np.dtype:
    return np.dtype(jnp.dtype(self.case.dtype))

  @property
  def flops(self) -> int:
    """Useful floating-point operations: 2 * nnz * N (multiply and add per stored value)."""
    return 2 * self.nnz * self.case.n

  @property
  def actual_sparsity(self) -> float:
    return 1 - self.nnz / math.prod(self.shape)

  def dense_matrix(self) -> np.ndarray:
    """A as a dense NumPy [M, K] array of the case's dtype."""
    return np.asarray(self.matrix.todense())

  def sparse_bytes(self) -> int:
    """Bytes of A's stored values and index arrays, as jsparse holds them."""
    # .nbytes of the arrays themselves: np.asarray would copy device arrays to the host, and
    # every record asks for these bytes several times (its floors).
    return int(sum(leaf.nbytes for leaf in (self.matrix.data, *self.matrix.index_arrays)))

  def min_bytes(self) -> int:
    """Least memory traffic of the op: A's values and indices read once, dense inputs read once,
    the output written once (SDDMM writes nnz values)."""
    itemsize = self.dtype.itemsize
    inputs = sum(operand.nbytes for operand in self.operands)
    if self.case.op == "sddmm":
      # The pattern's indices are read, its values are not: they are the output.
      indices = self.sparse_bytes() - self.matrix.data.nbytes
      return indices + inputs + self.nnz * itemsize
    rows = self.shape[0]
    return self.sparse_bytes() + inputs + rows * self.case.n * itemsize

  def gathered_bytes(self) -> int:
    """Bytes of dense rows that a CSR / COO kernel reads through the caches: a row of B (N
    values) a stored entry for SpMM, a row of Y (D values) for SDDMM, one value of x for SpMV;
    0 for BSR and N:M, whose kernels read dense tiles."""
    if self.case.format not in ("csr", "coo"):
      return 0
    return self.nnz * self.case.n * self.dtype.itemsize

  def gather_bytes(self) -> int:
    """Bytes of the largest intermediate of a gather-based (reference) lowering: nnz x N float32
    for COO/CSR (twice for SDDMM), one B row-block per stored block for BSR, dense A for NM."""
    n, fmt = self.case.n, self.case.format
    if fmt == "nm":
      return math.prod(self.shape) * 4
    if fmt == "bsr":
      block_rows, block_cols = self.matrix.block_shape
      return self.matrix.nse * max(block_rows, block_cols) * n * 4 * (2 if self.case.op == "sddmm" else 1)
    return self.nnz * n * 4 * (2 if self.case.op == "sddmm" else 1)


def build_problem(case: Case) -> Problem:
  """The problem of a case (the matrix is cached across the cases that share it)."""
  matrix, pattern = _matrix(case.format, case.source, case.sparsity, case.dtype)
  rows, cols = matrix.shape
  rng = np.random.default_rng(OPERAND_SEED)
  dtype = jnp.dtype(case.dtype)

  def normal(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32).astype(dtype)

  if case.op == "spmm":
    operands = (normal(cols, case.n),)
  elif case.op == "spmv":
    operands = (normal(cols),)
  else:
    operands = (normal(rows, case.n), normal(cols, case.n))
  return Problem(case, matrix, operands, pattern, nnz=int(matrix.nnz))


@functools.lru_cache(maxsize=4)
def _matrix(format: str, source: str, sparsity: float, dtype: str) -> tuple[Any, str]:
  kind, _, name = source.partition("/")
  np_dtype = jnp.dtype(dtype)
  if kind == "dlmc":
    pruning, shape_index = name.split("/")
    shape_text, index = shape_index.split("#")
    shape = grid.parse_shape(shape_text)
  elif kind == "uniform":
    shape = grid.parse_shape(name)
  elif kind == "llm":
    shape = datasets.LLM_SHAPES[name]
  else:
    raise ValueError(f"unknown source {source!r}")
  if format == "bsr":
    matrix = datasets.block_sparse(shape, grid.BSR_BLOCK, sparsity, seed=MATRIX_SEED,
                                   dtype=np_dtype, format="bsr")
    return matrix, f"random {grid.BSR_BLOCK[0]}x{grid.BSR_BLOCK[1]} blocks"
  if format == "nm":
    ratio = grid.nm_ratio(sparsity)
    if ratio is None:
      raise ValueError(f"no n:m pattern near sparsity {sparsity}")
    n, m = ratio
    matrix = datasets.nm_random(shape, n, m, seed=MATRIX_SEED, dtype=np_dtype, format="nm")
    return matrix, f"random {n}:{m}"
  if kind == "dlmc":
    entries = datasets.list_dlmc(pruning=pruning, sparsity=sparsity, shapes=[shape])
    if int(index) >= len(entries):
      raise ValueError(f"{source}: DLMC holds {len(entries)} {shape_text} matrices pruned by "
                       f"{pruning} at sparsity {sparsity}")
    entry = entries[int(index)]
    matrix = datasets.load_dlmc(entry, seed=MATRIX_SEED, dtype=np_dtype, format=format)
    return matrix, f"dlmc {entry.name}"
  if kind == "uniform":
    return (datasets.uniform_random(shape, sparsity, seed=MATRIX_SEED, dtype=np_dtype,
                                    format=format), "uniform random")
  return (datasets.llm_weight(name, sparsity, seed=MATRIX_SEED, dtype=np_dtype, format=format),
          f"magnitude-pruned Gaussian {name}")
