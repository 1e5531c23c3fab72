"""Seeded synthetic sparse matrices: uniform random, magnitude pruned, R-MAT, N:M and block sparse.

Every generator draws from ``np.random.default_rng(seed)``: the same arguments give the same
matrix, and the stored values are standard normal (never exactly zero) unless they come from a
given weight. Row-major [M, K] as in DLMC: the forward pass is ``A @ B`` with B dense [K, N].
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from jsparse.datasets import _build
from jsparse.formats import validation
from jsparse.formats.base import SparseMatrix
from jsparse.formats.bsr import BSR
from jsparse.formats.nm import NM

GRANULARITIES = ("global", "row")


def uniform_random(shape: Sequence[int], sparsity: float, *, seed: int = 0,
                   dtype: Any = np.float32, format: str = "csr") -> SparseMatrix:
  """A matrix whose nonzero positions are a uniformly random set of exactly the right size.

  Every set of ``nnz = round((1 - sparsity) * M * K)`` positions is equally likely (sampling
  without replacement, not a Bernoulli mask). About 1 s for [14336, 4096] at sparsity 0.5 on one
  CPU core; positions are drawn directly (no [M, K] mask) below a density of 1/64.

  Args:
    shape: (M, K).
    sparsity: fraction of zeros, in [0, 1].
    seed: seed of the pattern and the values.
    dtype: value dtype (float16, bfloat16, float32 or float64).
    format: "csr" or "coo".

  Returns:
    CSR (or COO) [M, K] with exactly ``nnz`` standard normal values; int32 indices unless a size
    needs int64.
  """
  shape = validation.check_shape_2d(shape)
  _build.check_format(format, _build.UNSTRUCTURED_FORMATS)
  rng = np.random.default_rng(seed)
  pattern = _build.sample_pattern(rng, shape, _build.kept_count(math.prod(shape), sparsity))
  values = _build.normal_values(rng, pattern.col_indices.shape[0], dtype)
  return _build.to_format(_build.csr_from_pattern(pattern, values, shape), format)


def magnitude_pruned(weight: Any, sparsity: float, *, granularity: str = "global",
                     format: str = "csr") -> SparseMatrix:
  """The largest-magnitude entries of a dense weight; the rest are pruned.

  Args:
    weight: dense [M, K] array (NumPy or JAX) of a floating dtype.
    sparsity: fraction of entries pruned, in [0, 1].
    granularity: "global" keeps the ``round((1 - sparsity) * M * K)`` largest |w| of the whole
      matrix; "row" keeps the ``round((1 - sparsity) * K)`` largest of every row.
    format: "csr" or "coo".

  Returns:
    CSR (or COO) [M, K] of weight's dtype holding the kept values (zeros of ``weight`` that are
    kept stay stored). Among equal magnitudes at the threshold, the first in row-major order win.

  References:
    Han, Pool, Tran, Dally. "Learning both Weights and Connections for Efficient Neural Networks",
    NeurIPS 2015, arXiv 1506.02626.
  """
  weight = np.asarray(weight)
  validation.check_dense_matrix("weight", weight)
  if granularity not in GRANULARITIES:
    raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
  _build.check_format(format, _build.UNSTRUCTURED_FORMATS)
  num_rows, num_cols = weight.shape
  # Sorting needs a NumPy float type; float16 / bfloat16 magnitudes are exact in float32.
  magnitude = np.abs(weight.astype(np.float64 if weight.dtype == np.float64 else np.float32))
  if granularity == "global":
    mask = _keep_largest(magnitude.reshape(1, -1), _build.kept_count(weight.size, sparsity))
  else:
    mask = _keep_largest(magnitude, _build.kept_count(num_cols, sparsity))
  mask = mask.reshape(weight.shape)
  csr = _build.csr_from_pattern(_build.pattern_from_mask(mask), weight[mask], weight.shape)
  return _build.to_format(csr, format)


def _keep_largest(magnitude: np.ndarray, keep: int) -> np.ndarray:
  """bool [S, L]: the ``keep`` largest entries of every row of ``magnitude`` [S, L]."""
  length = magnitude.shape[1]
  if keep == 0 or keep == length:
    return np.full(magnitude.shape, keep == length)
  smallest_kept = np.partition(magnitude, length - keep, axis=1)[:, length - keep, None]
  mask = magnitude > smallest_kept
  ties = magnitude == smallest_kept
  missing = keep - np.count_nonzero(mask, axis=1)
  for row in np.flatnonzero(np.count_nonzero(ties, axis=1) > missing):
    ties[row, np.flatnonzero(ties[row])[missing[row]:]] = False  # keep the leftmost ties
  return mask | ties


def rmat(shape: Sequence[int], num_edges: int, *, a: float = 0.57, b: float = 0.19,
         c: float = 0.19, d: float = 0.05, permute: bool = False, seed: int = 0,
         dtype: Any = np.float32, format: str = "csr") -> SparseMatrix:
  """The adjacency matrix of an R-MAT graph: power-law row and column degrees.

  Each edge descends the quadrants of the [2^r, 2^c] grid that covers ``shape``, picking top-left,
  top-right, bottom-left, bottom-right with probabilities a, b, c, d at every level (once one side
  runs out of levels, only the other side's choice counts). Duplicate edges and edges outside a
  side that is not a power of two are dropped, so nnz <= ``num_edges``. Graph500 uses its defaults
  with ``num_edges = 16 * M``.

  Args:
    shape: (M, K).
    num_edges: edges drawn before duplicates are dropped.
    a, b, c, d: quadrant probabilities, summing to 1; ``a > d`` puts the heavy rows at the top.
    permute: relabel rows and columns by random permutations (as Graph500 does), which spreads
      the heavy rows and columns over the matrix; the degree distribution is unchanged.
    seed: seed of the edges, the permutations and the values.
    dtype: value dtype. format: "csr" or "coo".

  Returns:
    CSR (or COO) [M, K] with standard normal values at the distinct edges.

  References:
    Chakrabarti, Zhan, Faloutsos. "R-MAT: A Recursive Model for Graph Mining", SDM 2004.
  """
  num_rows, num_cols = shape = validation.check_shape_2d(shape)
  _build.check_format(format, _build.UNSTRUCTURED_FORMATS)
  probabilities = np.array([a, b, c, d], np.float64)
  if (probabilities < 0).any() or not math.isclose(probabilities.sum(), 1.0, abs_tol=1e-9):
    raise ValueError(f"a, b, c, d must be non-negative and sum to 1, got {(a, b, c, d)} "
                     f"(sum {probabilities.sum()})")
  if num_edges < 0:
    raise ValueError(f"num_edges must be non-negative, got {num_edges}")
  rng = np.random.default_rng(seed)
  row_levels, col_levels = (max(size - 1, 0).bit_length() for size in shape)
  rows = np.zeros(num_edges, np.int64)
  cols = np.zeros(num_edges, np.int64)
  quadrant_bounds = np.cumsum(probabilities)[:-1]
  for level in range(max(row_levels, col_levels)):
    quadrant = np.searchsorted(quadrant_bounds, rng.random(num_edges), side="right")
    if level < row_levels:
      rows = 2 * rows + (quadrant >= 2)  # bottom half: c or d
    if level < col_levels:
      cols = 2 * cols + (quadrant % 2)  # right half: b or d
  inside = (rows < num_rows) & (cols < num_cols)
  rows, cols = rows[inside], cols[inside]
  if permute:
    rows = rng.permutation(num_rows)[rows]
    cols = rng.permutation(num_cols)[cols]
  pattern = _build.pattern_from_positions(np.unique(rows * num_cols + cols), shape)
  values = _build.normal_values(rng, pattern.col_indices.shape[0], dtype)
  return _build.to_format(_build.csr_from_pattern(pattern, values, shape), format)


def nm_random(shape: Sequence[int], n: int = 2, m: int = 4, *, seed: int = 0,
              dtype: Any = np.float32, format: str = "nm") -> SparseMatrix:
  """An N:M matrix: n uniformly chosen positions in every group of m consecutive columns.

  Args:
    shape: (M, K), K a multiple of m.
    n, m: n nonzeros in every group of m (1 <= n <= m <= 16); 2:4 by default.
    seed: seed of the positions and the values.
    dtype: value dtype.
    format: "nm", "csr" or "coo".

  Returns:
    NM (or CSR / COO) [M, K] with exactly n standard normal values per group.
  """
  num_rows, num_cols = shape = validation.check_shape_2d(shape)
  _build.check_format(format, ("nm", *_build.UNSTRUCTURED_FORMATS))
  if not 1 <= n <= m <= 16 or num_cols % m:
    raise ValueError(f"n:m must satisfy 1 <= n <= m <= 16 with m dividing K={num_cols}, "
                     f"got n={n}, m={m}")
  rng = np.random.default_rng(seed)
  # One draw per group from the C(m, n) sorted position sets (at most C(16, 8) = 12870).
  choices = np.array(list(itertools.combinations(range(m), n)), np.uint8)
  stored = (num_rows, num_cols // m * n)
  indices = choices[rng.integers(0, len(choices), (num_rows, num_cols // m))].reshape(stored)
  matrix = NM((_build.normal_values(rng, stored, dtype), indices), shape=shape, n=n, m=m,
              validate=False)
  return _build.to_format(matrix, format)


def block_sparse(shape: Sequence[int], block_shape: Sequence[int], sparsity: float, *,
                 seed: int = 0, dtype: Any = np.float32, format: str = "bsr") -> SparseMatrix:
  """A BSR matrix whose nonzero blocks are a uniformly random set of blocks of the grid.

  Args:
    shape: (M, K), multiples of block_shape.
    block_shape: (bm, bk).
    sparsity: fraction of the (M / bm) * (K / bk) blocks that are zero; exactly
      ``round((1 - sparsity) * blocks)`` blocks are stored.
    seed: seed of the block positions and the values.
    dtype: value dtype.
    format: "bsr", "csr" or "coo" (CSR and COO store every value of every nonzero block).

  Returns:
    BSR (or CSR / COO) [M, K] whose stored blocks are dense standard normal.
  """
  shape = validation.check_shape_2d(shape)
  _build.check_format(format, ("bsr", *_build.UNSTRUCTURED_FORMATS))
  bm, bk = (int(size) for size in block_shape)
  if bm < 1 or bk < 1 or shape[0] % bm or shape[1] % bk:
    raise ValueError(f"block_shape must be positive and divide the shape {shape}, got "
                     f"{(bm, bk)}")
  grid = (shape[0] // bm, shape[1] // bk)
  rng = np.random.default_rng(seed)
  pattern = _build.sample_pattern(rng, grid, _build.kept_count(math.prod(grid), sparsity))
  num_blocks = pattern.col_indices.shape[0]
  index_dtype = validation.index_dtype_for(*shape, num_blocks * bm * bk)
  matrix = BSR((_build.normal_values(rng, (num_blocks, bm, bk), dtype),
                pattern.col_indices.astype(index_dtype), pattern.row_offsets.astype(index_dtype)),
               shape=shape, validate=False)
  return _build.to_format(matrix, format)
