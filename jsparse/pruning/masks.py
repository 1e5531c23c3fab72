"""Pruning masks of weight matrices: which entries to keep, by magnitude, at random, N:M, by block.

Every function works on host (NumPy) copies of a weight laid out ``[out_features, in_features]``
(the sparse-times-dense layout of ``SparseLinear``: N:M groups run along ``in_features``) and
returns a bool mask of the same shape, True = kept. Counts are exact: a sparsity ``s`` prunes
``round(s * size)`` entries (blocks for ``block_mask``), ties broken towards the lower index.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np


def check_sparsity(sparsity: Any, name: str = "sparsity") -> float:
  """``sparsity`` as a float in [0, 1), or a ValueError naming it."""
  if (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating))
      or not 0.0 <= float(sparsity) < 1.0):
    raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}")
  return float(sparsity)


def num_pruned(size: int, sparsity: float) -> int:
  """How many of ``size`` entries a sparsity prunes: ``round(sparsity * size)``, halves up."""
  return int(math.floor(check_sparsity(sparsity) * size + 0.5))


def _keep_largest(scores: np.ndarray, num_kept: int) -> np.ndarray:
  """bool mask of the ``num_kept`` largest of the flat ``scores``; ties keep the lower index."""
  order = np.argsort(-scores, kind="stable")
  mask = np.zeros(scores.shape, bool)
  mask[order[:num_kept]] = True
  return mask


def _magnitudes(weight: Any) -> np.ndarray:
  weight = np.asarray(weight).astype(np.float64)  # via NumPy: bfloat16 included
  if weight.ndim != 2:
    raise ValueError(f"weight must be 2-D [out_features, in_features], got shape {weight.shape}")
  return np.abs(weight)


def magnitude_mask(weight: Any, sparsity: float) -> np.ndarray:
  """Keeps the ``size - round(sparsity * size)`` largest magnitudes of a [out, in] weight."""
  magnitude = _magnitudes(weight)
  keep = magnitude.size - num_pruned(magnitude.size, sparsity)
  return _keep_largest(magnitude.ravel(), keep).reshape(magnitude.shape)


def global_magnitude_masks(weights: Mapping[Any, Any], sparsity: float) -> dict[Any, np.ndarray]:
  """One magnitude ranking over every weight together: ``round(sparsity * total)`` pruned.

  Args:
    weights: name -> [out, in] weight.
  Returns:
    name -> bool mask; per-layer sparsities differ, the total is exact.
  """
  magnitudes = {name: _magnitudes(w) for name, w in weights.items()}
  flat = np.concatenate([m.ravel() for m in magnitudes.values()]) if magnitudes else np.zeros(0)
  kept = _keep_largest(flat, flat.size - num_pruned(flat.size, sparsity))
  masks, start = {}, 0
  for name, magnitude in magnitudes.items():
    masks[name] = kept[start:start + magnitude.size].reshape(magnitude.shape)
    start += magnitude.size
  return masks


def random_mask(shape: Sequence[int], sparsity: float, rng: np.random.Generator) -> np.ndarray:
  """Exactly ``round(sparsity * size)`` entries pruned, chosen uniformly at random."""
  size = math.prod(shape)
  mask = np.zeros(size, bool)
  mask[rng.permutation(size)[:size - num_pruned(size, sparsity)]] = True
  return mask.reshape(shape)


def check_nm(n: Any, m: Any, in_features: int) -> tuple[int, int]:
  """(n, m) with 1 <= n <= m <= 16 and m dividing ``in_features``, or a ValueError."""
  if not all(isinstance(v, (int, np.integer)) for v in (n, m)) or not 1 <= n <= m <= 16:
    raise ValueError(f"nm must be (n, m) with 1 <= n <= m <= 16, got ({n!r}, {m!r})")
  if in_features % m:
    raise ValueError(f"the N:M group size m={m} must divide in_features={in_features}")
  return int(n), int(m)


def nm_mask(weight: Any, n: int = 2, m: int = 4) -> np.ndarray:
  """Keeps the n largest magnitudes of every group of m consecutive inputs (2:4 by default)."""
  magnitude = _magnitudes(weight)
  out_features, in_features = magnitude.shape
  n, m = check_nm(n, m, in_features)
  groups = magnitude.reshape(out_features, in_features // m, m)
  kept = np.argsort(-groups, axis=-1, kind="stable")[..., :n]
  mask = np.zeros(groups.shape, bool)
  np.put_along_axis(mask, kept, True, axis=-1)
  return mask.reshape(magnitude.shape)


def check_block_shape(block_shape: Any, shape: Sequence[int]) -> tuple[int, int]:
  """(bm, bk) dividing ``shape`` = (out, in), or a ValueError naming both."""
  if (not isinstance(block_shape, (tuple, list)) or len(block_shape) != 2
      or not all(isinstance(b, (int, np.integer)) and b > 0 for b in block_shape)):
    raise ValueError(f"block_shape must be two positive ints (bm, bk), got {block_shape!r}")
  if shape[0] % block_shape[0] or shape[1] % block_shape[1]:
    raise ValueError(f"block_shape {tuple(block_shape)} must divide the weight's "
                     f"[out_features, in_features] = {tuple(shape)}")
  return int(block_shape[0]), int(block_shape[1])


def block_mask(weight: Any, sparsity: float, block_shape: Sequence[int] = (16, 16)) -> np.ndarray:
  """Keeps whole [bm, bk] blocks with the largest L2 norms; prunes ``round(s * blocks)`` blocks."""
  magnitude = _magnitudes(weight)
  bm, bk = check_block_shape(block_shape, magnitude.shape)
  grid = (magnitude.shape[0] // bm, magnitude.shape[1] // bk)
  norms = np.sqrt((magnitude ** 2).reshape(grid[0], bm, grid[1], bk).sum(axis=(1, 3)))
  kept = _keep_largest(norms.ravel(), norms.size - num_pruned(norms.size, sparsity))
  return np.repeat(np.repeat(kept.reshape(grid), bm, axis=0), bk, axis=1)
