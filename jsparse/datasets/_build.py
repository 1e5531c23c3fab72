"""What every dataset builder shares: argument checks, seeded values, sparsity patterns, formats.

A pattern is a pair ``(row_offsets int64 [R + 1], col_indices int64 [nnz])`` in row-major order,
the index arrays of a CSR (or, over a block grid, a BSR) matrix without its values.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation
from jsparse.formats.base import SparseMatrix
from jsparse.formats.csr import CSR

UNSTRUCTURED_FORMATS = ("csr", "coo")
# Up to this fraction of cells, sample_pattern draws the positions themselves (O(nnz) memory, no
# [R, C] mask); below 1/50, NumPy's choice(replace=False) uses Floyd's algorithm instead of a
# permutation of every cell.
POSITIONS_FRACTION = 1 / 64
# The mask path thresholds 16-bit random keys: fewer random bytes than float keys.
KEY_RANGE = 1 << 16


class Pattern(NamedTuple):
  """Positions of the stored entries of an [R, C] matrix, row-major."""

  row_offsets: np.ndarray  # int64 [R + 1]
  col_indices: np.ndarray  # int64 [nnz]


def check_sparsity(sparsity: float) -> float:
  sparsity = float(sparsity)
  if not 0.0 <= sparsity <= 1.0:
    raise ValueError(f"sparsity must be in [0, 1] (the fraction of zeros), got {sparsity}")
  return sparsity


def kept_count(size: int, sparsity: float) -> int:
  """Entries kept out of ``size`` at ``sparsity``: ``round((1 - sparsity) * size)``."""
  return round((1.0 - check_sparsity(sparsity)) * size)


def check_format(format: str, allowed: Sequence[str]) -> str:
  if format not in allowed:
    raise ValueError(f"format must be one of {tuple(allowed)}, got {format!r}")
  return format


def normal_values(rng: np.random.Generator, shape: int | Sequence[int], dtype: Any) -> np.ndarray:
  """Standard normal values of ``dtype``, none exactly zero.

  Drawn in float64 for float64, else in float32 and cast. A value that rounds to zero (float16
  underflow) becomes the dtype's smallest normal number, so every stored entry is a nonzero.
  """
  dtype = jnp.dtype(dtype)
  validation.check_value_dtype("dtype", np.empty(0, dtype))
  draw_dtype = np.float64 if dtype == np.float64 else np.float32
  values = rng.standard_normal(shape, dtype=draw_dtype).astype(dtype)
  zeros = values == 0
  if zeros.any():
    values[zeros] = jnp.finfo(dtype).tiny
  return values


def sample_pattern(rng: np.random.Generator, shape: tuple[int, int], count: int) -> Pattern:
  """``count`` distinct positions of an [R, C] grid, every such set equally likely."""
  num_rows, num_cols = shape
  size = num_rows * num_cols
  if not 0 <= count <= size:
    raise ValueError(f"count must be in [0, {size}] for shape {shape}, got {count}")
  if count <= size * POSITIONS_FRACTION:
    return pattern_from_positions(np.sort(rng.choice(size, count, replace=False)), shape)
  return pattern_from_mask(_sample_mask(rng, shape, count))


def _sample_mask(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
  """A bool [R, C] mask with exactly ``count`` set cells, uniformly chosen.

  Thresholds random keys (a Bernoulli mask, whose count is off by about sqrt(count)) and then
  flips uniformly drawn cells until the count is exact. Every step treats the cells alike, so every
  set of ``count`` cells is equally likely.
  """
  size = math.prod(shape)
  if count == 0:
    return np.zeros(shape, bool)
  if 2 * count > size:  # Sample the zeros: keeps the flips below cheap (acceptance >= 1/2).
    return ~_sample_mask(rng, shape, size - count)
  mask = rng.integers(0, KEY_RANGE, shape, dtype=np.uint16) < round(count / size * KEY_RANGE)
  flat = mask.reshape(-1)
  surplus = int(np.count_nonzero(flat)) - count
  while surplus:
    flip_set = surplus > 0  # remove set cells, or fill unset ones
    eligible = (count + surplus) / size if flip_set else 1 - (count + surplus) / size
    candidates = rng.integers(0, size, math.ceil(abs(surplus) / eligible * 1.25) + 16)
    _, first = np.unique(candidates, return_index=True)
    candidates = candidates[np.sort(first)]  # distinct, in the order drawn
    candidates = candidates[flat[candidates] == flip_set][:abs(surplus)]
    flat[candidates] = not flip_set
    surplus += -candidates.size if flip_set else candidates.size
  return mask


def pattern_from_mask(mask: np.ndarray) -> Pattern:
  """The set cells of a bool [R, C] mask."""
  num_rows, num_cols = mask.shape
  # Boolean indexing of broadcast column numbers: about 2x faster than flatnonzero then divmod.
  col_indices = np.broadcast_to(np.arange(num_cols, dtype=np.int64), mask.shape)[mask]
  return Pattern(_offsets_from_counts(np.count_nonzero(mask, axis=1)), col_indices)


def pattern_from_positions(positions: np.ndarray, shape: tuple[int, int]) -> Pattern:
  """The pattern of sorted, distinct row-major cell numbers ``row * C + col`` (int [nnz])."""
  num_rows, num_cols = shape
  positions = np.asarray(positions, np.int64)
  rows = positions // max(num_cols, 1)
  counts = np.bincount(rows, minlength=num_rows)
  return Pattern(_offsets_from_counts(counts), positions - rows * num_cols)


def _offsets_from_counts(counts: np.ndarray) -> np.ndarray:
  return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])


def csr_from_pattern(pattern: Pattern, values: np.ndarray, shape: tuple[int, int]) -> CSR:
  """A CSR [R, C] matrix with ``values`` [nnz] at the positions of ``pattern``."""
  index_dtype = validation.index_dtype_for(*shape, values.shape[0])
  # Built from trusted structure: skip the host checks, which cost as much as the sampling.
  return CSR((values, pattern.col_indices.astype(index_dtype),
              pattern.row_offsets.astype(index_dtype)), shape=shape, validate=False)


def to_format(matrix: SparseMatrix, format: str) -> SparseMatrix:
  """``matrix`` itself when it has ``format``, else its ``tocsr()`` or ``tocoo()``."""
  if format == matrix.format:
    return matrix
  return {"csr": matrix.tocsr, "coo": matrix.tocoo}[format]()
