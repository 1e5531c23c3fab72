"""Random block masks and BSR operands for the BSR benchmarks (``bsr_mgpu_bench.py``,
``bsr_config_sweep.py``): exactly ``round(d x blocks)`` blocks kept, uniformly at random, so
block rows are ragged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def block_mask(rng: np.random.Generator, shape: tuple[int, int], block_shape: tuple[int, int],
               density: float) -> np.ndarray:
  """bool [M / bm, K / bk] with exactly round(density x blocks) blocks kept (at least one)."""
  rows, cols = shape[0] // block_shape[0], shape[1] // block_shape[1]
  keep = np.zeros(rows * cols, bool)
  keep[rng.choice(rows * cols, max(1, round(density * rows * cols)), replace=False)] = True
  return keep.reshape(rows, cols)


def bsr_operands(key: jax.Array, keep: np.ndarray, block_shape: tuple[int, int], nse: int,
                 dtype=jnp.bfloat16):
  """(data [nse, bm, bk], col_indices, row_offsets int32, A dense [M, K]), values of ``dtype``:
  the kept blocks in row-major order, then padding blocks up to ``nse`` (zeros, column 0)."""
  bm, bk = block_shape
  block_rows, block_cols = np.nonzero(keep)
  kept = block_rows.size
  data = jax.random.normal(key, (kept, bm, bk), dtype)
  blocks = jnp.zeros((*keep.shape, bm, bk), dtype).at[block_rows, block_cols].set(data)
  dense_a = blocks.transpose(0, 2, 1, 3).reshape(keep.shape[0] * bm, keep.shape[1] * bk)
  data = jnp.concatenate([data, jnp.zeros((nse - kept, bm, bk), dtype)])
  col_indices = jnp.asarray(np.concatenate([block_cols, np.zeros(nse - kept, int)]), jnp.int32)
  row_offsets = jnp.asarray(np.concatenate([[0], np.cumsum(keep.sum(axis=1))]), jnp.int32)
  return data, col_indices, row_offsets, dense_a
