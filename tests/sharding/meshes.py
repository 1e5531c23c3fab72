"""Device meshes and uneven sparse matrices for the sharding tests.

``tests/conftest.py`` gives the CPU eight devices; a mesh needing more devices than JAX sees
skips its test, visibly.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import jsparse
from jsparse.sharding import partition
from tests.helpers import make_sparse, random_dense, random_nm_dense

# (mesh shape, mesh axis names, spec of the sparse matrix): rows split on 1, 2, 4 and 8 devices,
# the K-split (columns, psum) on 2 and 8, and both on a 2 x 4 mesh.
LAYOUTS = {
    "rows1": ((1,), ("x",), ("x",)),
    "rows2": ((2,), ("x",), ("x",)),
    "rows4": ((4,), ("x",), ("x",)),
    "rows8": ((8,), ("x",), ("x",)),
    "cols2": ((2,), ("x",), (None, "x")),
    "cols8": ((8,), ("x",), (None, "x")),
    "grid2x4": ((2, 4), ("x", "y"), ("x", "y")),
}


def mesh(shape, names) -> jax.sharding.Mesh:
  needed = math.prod(shape)
  if jax.device_count() < needed:
    pytest.skip(f"needs {needed} devices, JAX sees {jax.device_count()} (tests/conftest.py sets "
                f"XLA_FLAGS=--xla_force_host_platform_device_count=8 for the CPU)")
  return jax.make_mesh(shape, names, devices=jax.devices()[:needed])


def uneven_matrix(fmt: str, rng: np.random.Generator, dtype=np.float64, *, pad: int = 0):
  """A matrix whose nonzeros are far from uniform over its rows and columns.

  Shapes are not multiples of the device counts: CSR/COO 37 x 30, BSR 36 x 32 in (3, 4) blocks,
  NM 37 x 32 (2:4), Tiled 37 x 70 in (4, 32) tiles (the last tile row and column part-filled).
  Rows: a dense band at the top, empty rows, ragged row lengths.
  """
  if fmt == "nm":
    return make_sparse("nm", random_nm_dense(rng, (37, 32), 2, 4, dtype, density=0.7), nm=(2, 4))
  shape = {"bsr": (36, 32), "tiled": (37, 70)}.get(fmt, (37, 30))
  dense = random_dense(rng, shape, 0.15, np.float64, empty_rows=5, ragged=True)
  dense[:6] = random_dense(rng, (6, shape[1]), 0.9, np.float64)
  dense = dense.astype(dtype)
  if fmt == "tiled":
    return jsparse.Tiled.fromdense(dense, tile_shape=(4, 32), nse=int((dense != 0).sum()) + pad)
  return make_sparse(fmt, dense, pad=pad, block_shape=(3, 4))


def host_dense(matrix) -> tuple[np.ndarray, np.ndarray]:
  """(float64 dense [M, K], bool [M, K] stored positions) of a concrete matrix, in NumPy only
  (eager jsparse conversions would compile once per shape)."""
  dense = np.zeros(matrix.shape)
  stored = np.zeros(matrix.shape, bool)
  if matrix.format == "nm":
    rows = np.arange(matrix.shape[0])[:, None]
    groups = np.arange(matrix.data.shape[1]) // matrix.n * matrix.m
    cols = groups[None, :] + np.asarray(matrix.indices).astype(np.int64)
    dense[rows, cols] = np.asarray(matrix.data.astype(np.float64))
    stored[rows, cols] = True
    return dense, stored
  entries = partition.host_entries(matrix)
  bm, bk = entries.unit
  values = np.asarray(entries.values).astype(np.float64).reshape(-1, bm, bk)
  for (row, col, block) in zip(entries.rows, entries.cols, values):
    dense[row * bm:(row + 1) * bm, col * bk:(col + 1) * bk] = block
    stored[row * bm:(row + 1) * bm, col * bk:(col + 1) * bk] = True
  return dense, stored
