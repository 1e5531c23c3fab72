"""N:M semi-structured sparsity: n values kept in every group of m along the contraction axis."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import _structure, validation
from jsparse.formats.base import SparseMatrix
from jsparse.formats.coo import COO
from jsparse.formats.csr import CSR
from pallas_kernels.nm_packing import pack_indices, packed_layout

PACKED_INDEX_DTYPE = jnp.uint32

MAX_GROUP = 16


class NM(SparseMatrix):
  """A sparse [M, K] matrix with exactly n stored values in each group of m consecutive columns.

  The layout of NVIDIA's 2:4 sparse tensor cores, generalised to any n <= m <= 16. Row i, group g
  covers columns ``g*m : (g+1)*m``; its stored values are ``data[i, g*n:(g+1)*n]`` at columns
  ``g*m + indices[i, g*n:(g+1)*n]``.

  The positions are also held packed (``packed_indices``, built once at construction): the GPU
  kernels read 4 bits a 2:4 group from them instead of 2 bytes, with no packing pass per call;
  the reference lowering and the C++ kernels read ``indices``.

  Attributes:
    data: [M, K / m * n] values, float16 / bfloat16 / float32 / float64.
    indices: uint8 [M, K / m * n], position within the group, strictly increasing in each group.
    packed_indices: uint32 [M, ceil(K / m / g)], the same positions packed g groups a word
      (``pallas_kernels.nm_matmul.pack_indices``); [M, 0] when a group's n positions need more
      than 32 bits (n * ceil(log2 m) > 32, e.g. 9:16).
    shape: (M, K), static, with K a multiple of m; n, m: static ints.
  """

  format = "nm"
  index_names = ("indices", "packed_indices")
  _aux_names = ("n", "m")

  def __init__(self, arrays: tuple[Any, ...], *, shape: tuple[int, int], n: int = 2, m: int = 4,
               validate: bool | None = None):
    """Builds an N:M matrix from ``(data, indices)`` or ``(data, indices, packed_indices)``.

    Args:
      arrays: ``(data [M, K/m*n], indices [M, K/m*n])``, optionally with the packed copy
        ``packed_indices`` (as ``matrix.index_arrays`` give it; built from ``indices`` when
        absent, checked against them when validating).
      shape: ``(M, K)``; K must be a multiple of m.
      n, m: n kept values in every group of m (1 <= n <= m <= 16).
      validate: check the indices on the host (None: when the arrays are concrete).
    """
    if len(arrays) not in (2, 3):
      raise ValueError(f"arrays must be (data, indices) or (data, indices, packed_indices), got "
                       f"{len(arrays)} arrays")
    data, indices, *packed = (jnp.asarray(a) for a in arrays)
    self.shape = validation.check_shape_2d(shape)
    self.n, self.m = _check_nm(n, m, self.shape)
    validation.check_value_dtype("data", data)
    validation.check_index_dtype("indices", indices)
    stored = (self.shape[0], self.shape[1] // self.m * self.n)
    validation.check_array_shape("data", data, stored, f"[M, K / m * n] for {self.n}:{self.m}")
    validation.check_array_shape("indices", indices, stored, "the shape of data")
    self.data, self.indices = data, indices.astype(jnp.uint8)
    pack = lambda: packed_positions(self.indices, (self.n, self.m))  # noqa: E731
    if packed:
      validation.check_array_shape("packed_indices", packed[0], jax.eval_shape(pack).shape,
                                   f"the packed positions of {self.n}:{self.m} indices")
      if packed[0].dtype != PACKED_INDEX_DTYPE:
        raise TypeError(f"packed_indices must be uint32, got {packed[0].dtype}")
    self.packed_indices = packed[0] if packed else pack()
    if validation.should_validate(validate, data, indices, *packed):
      self._validate(np.asarray(indices))
      if packed and not np.array_equal(np.asarray(packed[0]), np.asarray(pack())):
        raise ValueError("packed_indices do not hold the positions of indices (build the matrix "
                         "from (data, indices) to have them packed)")

  def _validate(self, indices: np.ndarray) -> None:
    validation.check_in_range("indices", indices, 0, self.m)
    groups = indices.reshape(self.shape[0], self.shape[1] // self.m, self.n).astype(np.int64)
    bad = np.diff(groups, axis=-1) <= 0
    if bad.any():
      row, group, k = (int(i) for i in np.argwhere(bad)[0])
      raise ValueError(f"indices must strictly increase within each group of {self.n}: row {row},"
                       f" group {group} holds positions {groups[row, group].tolist()}, so the "
                       f"{self.n}:{self.m} pattern does not hold")

  def _layout_extras(self) -> dict:
    return {"nm": (self.n, self.m)}

  @property
  def nse(self) -> int:
    return int(self.data.size)

  # -- constructors ----------------------------------------------------------------------------
  @classmethod
  def fromdense(cls, x: Any, *, n: int = 2, m: int = 4, prune: bool = True) -> "NM":
    """The n largest-magnitude values of each group of m columns of a dense [M, K] matrix.

    Args:
      x: dense [M, K] array of a floating dtype; K a multiple of m.
      n, m: keep n of every m (2:4 by default).
      prune: drop the smaller values of groups that hold more than n nonzeros. With
        ``prune=False`` such a group raises a ``ValueError`` instead (needs concrete ``x``).
    Jit-able (with ``prune=True``); ties keep the leftmost values.
    """
    x = jnp.asarray(x)
    validation.check_dense_matrix("x", x)
    n, m = _check_nm(n, m, x.shape)
    num_rows, num_cols = x.shape
    groups = x.reshape(num_rows, num_cols // m, m)
    if not prune:
      if not validation.is_concrete(x):
        raise ValueError("prune=False checks the N:M pattern on the host and needs a concrete x")
      overfull = first_overfull_group(x, n, m)
      if overfull is not None:
        row, group, count = overfull
        raise ValueError(f"x does not hold the {n}:{m} pattern: row {row}, group {group} "
                         f"(columns {group * m}:{(group + 1) * m}) has {count} nonzeros > n={n}")
    # lax.top_k returns the lower index first among equal magnitudes.
    _, kept = jax.lax.top_k(jnp.abs(groups).astype(jnp.promote_types(x.dtype, jnp.float32)), n)
    kept = jnp.sort(kept, axis=-1)
    data = jnp.take_along_axis(groups, kept, axis=-1)
    stored = (num_rows, num_cols // m * n)
    return cls((data.reshape(stored), kept.reshape(stored).astype(jnp.uint8)),
               shape=x.shape, n=n, m=m, validate=False)

  @classmethod
  def from_scipy(cls, matrix: Any, *, n: int = 2, m: int = 4, prune: bool = False) -> "NM":
    """From a SciPy sparse matrix that holds the n:m pattern (``prune=True`` enforces it)."""
    dense = matrix.toarray()
    return cls.fromdense(dense.astype(np.float32) if dense.dtype.kind != "f" else dense, n=n,
                         m=m, prune=prune)

  # -- conversions -----------------------------------------------------------------------------
  def col_indices(self) -> jax.Array:
    """Column [M, K / m * n] of every stored value."""
    return _structure.nm_columns(self.indices, self.n, self.m)

  def todense(self) -> jax.Array:
    dense = jnp.zeros(self.shape, self.dtype)
    rows = jnp.arange(self.shape[0])[:, None]
    return dense.at[rows, self.col_indices()].set(self.data)

  def tocsr(self) -> CSR:
    """CSR with every stored value (explicit zeros kept); sorted already. Jit-able."""
    per_row = self.data.shape[1]
    row_offsets = jnp.arange(self.shape[0] + 1, dtype=jnp.int32) * per_row
    return CSR((self.data.reshape(-1), self.col_indices().reshape(-1), row_offsets),
               shape=self.shape, validate=False)

  def tocoo(self) -> COO:
    return self.tocsr().tocoo()


def first_overfull_group(x: Any, n: int, m: int) -> tuple[int, int, int] | None:
  """``(row, group, nonzeros)`` of the first group of m consecutive columns of a concrete
  [M, K] ``x`` (K a multiple of m) holding more than n nonzeros, or None when every group
  holds the n:m pattern. Read on the host."""
  values = np.asarray(x)
  counts = np.count_nonzero(values.reshape(values.shape[0], -1, m), axis=-1)
  if not (counts > n).any():
    return None
  row, group = (int(i) for i in np.argwhere(counts > n)[0])
  return row, group, int(counts[row, group])


def packed_positions(indices: Any, nm: tuple[int, int]) -> jax.Array:
  """``NM.packed_indices`` of uint8 positions [..., M, K / m * n]: uint32 [..., M, words]
  (``pack_indices``), or [..., M, 0] for patterns whose group does not fit a word."""
  indices = jnp.asarray(indices)
  if not packable(nm):
    return jnp.zeros((*indices.shape[:-1], 0), PACKED_INDEX_DTYPE)
  rows = indices.reshape(math.prod(indices.shape[:-1]), indices.shape[-1])  # M or K may be 0
  packed = pack_indices(rows, nm)
  return packed.reshape(*indices.shape[:-1], packed.shape[-1])


def packable(nm: tuple[int, int]) -> bool:
  """Whether a group's n positions fit one uint32 word (so ``packed_indices`` holds them)."""
  try:
    packed_layout(nm)
  except ValueError:
    return False
  return True


def _check_nm(n: Any, m: Any, shape: tuple[int, int]) -> tuple[int, int]:
  n, m = int(n), int(m)
  if not 1 <= n <= m <= MAX_GROUP:
    raise ValueError(f"n:m must satisfy 1 <= n <= m <= {MAX_GROUP}, got n={n}, m={m}")
  if shape[1] % m:
    raise ValueError(f"the number of columns K={shape[1]} must be a multiple of m={m} for "
                     f"{n}:{m} sparsity")
  return n, m
