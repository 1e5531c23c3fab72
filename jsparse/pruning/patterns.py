"""A pruned weight as a jsparse matrix whose pattern is exactly a given mask."""

from __future__ import annotations

from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np

from jsparse.formats import BSR, CSR, NM, SparseMatrix, Tiled
from jsparse.pruning import masks as masks_lib

LAYER_FORMATS = ("csr", "bsr", "nm", "tiled")


def check_format(format: Any) -> str:
  if format not in LAYER_FORMATS:
    raise ValueError(f"format must be one of {LAYER_FORMATS}, got {format!r}")
  return format


def default_mask(weight: Any, *, format: str, sparsity: float | None, method: str = "magnitude",
                 nm: Sequence[int] = (2, 4), block_shape: Sequence[int] = (16, 16),
                 rng: np.random.Generator | None = None) -> np.ndarray:
  """The mask that ``format`` needs: N:M groups for "nm", whole blocks for "bsr", else ``method``.

  Args:
    weight: [out, in]. sparsity: in [0, 1) (ignored by "nm", whose sparsity is 1 - n/m).
    method: "magnitude" or "random" (random keeps random entries, blocks or group positions).
  """
  check_format(format)
  if method not in ("magnitude", "random"):
    raise ValueError(f"method must be 'magnitude' or 'random', got {method!r}")
  shape = np.shape(weight)
  if method == "random":
    rng = rng if rng is not None else np.random.default_rng(0)
    weight = rng.standard_normal(shape)  # a random ranking, then the same structural rules
  if format == "nm":
    return masks_lib.nm_mask(weight, *nm)
  if sparsity is None:
    raise ValueError(f"sparsity must be given for format {format!r}")
  if format == "bsr":
    return masks_lib.block_mask(weight, sparsity, block_shape)
  return masks_lib.magnitude_mask(weight, sparsity)


def sparse_from_mask(weight: Any, mask: Any, *, format: str,
                     block_shape: Sequence[int] = (16, 16),
                     nm: Sequence[int] = (2, 4)) -> SparseMatrix:
  """The entries of ``weight`` [out, in] where ``mask`` is True, as a ``format`` matrix.

  The stored pattern is the mask's, kept zeros included (``fromdense`` would drop them). BSR
  stores every [bm, bk] block holding a kept entry, with the unkept entries of a block as zeros;
  "nm" needs exactly n kept entries in every group of m inputs; "tiled" stores the mask in
  ``Tiled``'s default tiles (bitmaps plus packed values, for the tensor-core SpMM).
  """
  check_format(format)
  values = np.asarray(weight)
  mask = np.asarray(mask, bool)
  if mask.shape != values.shape or values.ndim != 2:
    raise ValueError(f"mask must have the weight's 2-D shape {values.shape}, got {mask.shape}")
  out_features, in_features = values.shape
  dtype = jnp.asarray(weight).dtype
  if format == "csr":
    rows, cols = np.nonzero(mask)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=out_features))])
    index_dtype = np.int32 if max(values.size, in_features) < 2**31 else np.int64
    return CSR((jnp.asarray(values[rows, cols], dtype), cols.astype(index_dtype),
                offsets.astype(index_dtype)), shape=values.shape)
  if format == "tiled":
    return Tiled.from_mask(jnp.asarray(values, dtype), mask)
  if format == "bsr":
    bm, bk = masks_lib.check_block_shape(block_shape, values.shape)
    grid = (out_features // bm, in_features // bk)
    kept_blocks = mask.reshape(grid[0], bm, grid[1], bk).any(axis=(1, 3))
    rows, cols = np.nonzero(kept_blocks)
    blocks = np.where(mask, values, 0).reshape(grid[0], bm, grid[1], bk).transpose(0, 2, 1, 3)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=grid[0]))])
    return BSR((jnp.asarray(blocks[rows, cols].reshape(-1, bm, bk), dtype),
                cols.astype(np.int32), offsets.astype(np.int32)), shape=values.shape)
  n, m = masks_lib.check_nm(*nm, in_features)
  groups = mask.reshape(out_features, in_features // m, m)
  counts = groups.sum(axis=-1)
  if (counts != n).any():
    row, group = (int(i) for i in np.argwhere(counts != n)[0])
    raise ValueError(f"mask must keep exactly n={n} of every m={m} inputs for format 'nm': row "
                     f"{row}, group {group} keeps {counts[row, group]}")
  positions = np.nonzero(groups)[2].reshape(out_features, -1)
  data = values[mask].reshape(out_features, -1)
  return NM((jnp.asarray(data, dtype), positions.astype(np.uint8)), shape=values.shape, n=n, m=m)
