"""A sparse matrix split across the devices of a mesh: ``jsparse.shard(A, mesh, spec)`` and back.

The matrix is cut into a grid of pieces (``partition``): its rows into one piece per device of the
mesh axis named first in ``spec``, its columns into one per device of the axis named second.
Every piece is a matrix of the same format and padded shape; their arrays are stacked with two
leading axes ``[row parts, col parts]`` and placed with ``NamedSharding(mesh, P(rows, cols))``, so
each device holds exactly its own piece. Mesh axes that ``spec`` does not name hold copies.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jsparse.formats import SparseMatrix
from jsparse.sharding import partition

AxisName = str | tuple[str, ...] | None


class ShardedSparse:
  """A sparse [M, K] matrix held as per-device pieces; a pytree that passes through ``jit``.

  Attributes:
    pieces: a matrix of the original format whose ``shape`` is the padded piece shape
      ``(max piece rows, max piece columns)`` and whose arrays have two leading axes
      ``[row parts, col parts]``, sharded over ``mesh`` as ``P(row_axis, col_axis)``.
    shape: (M, K), the global shape (static).
    row_cuts, col_cuts: piece (i, j) holds rows ``row_cuts[i]:row_cuts[i+1]`` and columns
      ``col_cuts[j]:col_cuts[j+1]`` (static).
    mesh: the ``jax.sharding.Mesh``; row_axis, col_axis: the mesh axis names (or tuples of names,
      or None) that split the rows and the columns (static).
  """

  def __init__(self, pieces: SparseMatrix, *, shape: tuple[int, int], row_cuts: Sequence[int],
               col_cuts: Sequence[int], mesh: Mesh, row_axis: AxisName, col_axis: AxisName):
    self.pieces = pieces
    self.shape = tuple(shape)
    self.row_cuts, self.col_cuts = tuple(row_cuts), tuple(col_cuts)
    self.mesh, self.row_axis, self.col_axis = mesh, row_axis, col_axis

  def _aux(self):
    return (self.shape, self.row_cuts, self.col_cuts, self.mesh, self.row_axis, self.col_axis)

  @classmethod
  def _unflatten(cls, aux, children):
    sharded = object.__new__(cls)
    sharded.pieces = children[0]
    (sharded.shape, sharded.row_cuts, sharded.col_cuts, sharded.mesh, sharded.row_axis,
     sharded.col_axis) = aux
    return sharded

  @property
  def spec(self) -> PartitionSpec:
    """How the pieces' two leading axes are laid over the mesh."""
    return PartitionSpec(self.row_axis, self.col_axis)

  @property
  def grid(self) -> tuple[int, int]:
    """(row parts, col parts)."""
    return (len(self.row_cuts) - 1, len(self.col_cuts) - 1)

  @property
  def piece_shape(self) -> tuple[int, int]:
    return tuple(self.pieces.shape)

  @property
  def format(self) -> str:
    return self.pieces.format

  @property
  def dtype(self) -> np.dtype:
    return self.pieces.dtype

  def with_data(self, data: Any) -> "ShardedSparse":
    """The same pieces' structure with new stacked values (the shape of ``pieces.data``)."""
    children, aux = self.pieces._tree_flatten()
    pieces = type(self.pieces)._tree_unflatten(aux, (data, *children[1:]))
    return ShardedSparse._unflatten(self._aux(), (pieces,))

  def piece_stored(self) -> np.ndarray:
    """int [row parts, col parts]: the stored values of each piece, padding excluded (host)."""
    stored = np.zeros(self.grid, np.int64)
    pieces = partition.on_host(self.pieces)
    for i in range(self.grid[0]):
      for j in range(self.grid[1]):
        one = partition.piece(pieces, i, j)
        if one.format == "nm":
          rows = self.row_cuts[i + 1] - self.row_cuts[i]
          cols = self.col_cuts[j + 1] - self.col_cuts[j]
          stored[i, j] = rows * cols // one.m * one.n
        else:
          found = partition.host_entries(one)
          stored[i, j] = found.values.size
    return stored

  def __repr__(self) -> str:
    return (f"ShardedSparse({self.format}, shape={self.shape}, grid={self.grid}, "
            f"piece_shape={self.piece_shape}, spec={self.spec}, dtype={self.dtype})")


jax.tree_util.register_pytree_node(ShardedSparse, lambda s: ((s.pieces,), s._aux()),
                                   ShardedSparse._unflatten)


def axis_size(mesh: Mesh, axis: AxisName) -> int:
  """Number of devices along a mesh axis name, a tuple of names (their product) or None (1)."""
  if axis is None:
    return 1
  names = (axis,) if isinstance(axis, str) else tuple(axis)
  for name in names:
    if name not in mesh.shape:
      raise ValueError(f"mesh axis {name!r} is not in the mesh, whose axes are "
                       f"{tuple(mesh.shape)}")
  return math.prod(mesh.shape[name] for name in names)


def place(tree: Any, mesh: Mesh, spec: PartitionSpec) -> Any:
  """Every array of ``tree`` laid out over ``mesh`` as ``spec`` (a transfer only where it is laid
  out differently; a sharding constraint under ``jit``), as ``shard_map`` expects its inputs."""
  return jax.device_put(tree, NamedSharding(mesh, spec))


def _axis_names(axis: AxisName) -> tuple[str, ...]:
  return () if axis is None else ((axis,) if isinstance(axis, str) else tuple(axis))


def shard(matrix: SparseMatrix, mesh: Mesh, spec: Any = PartitionSpec("x"), *,
          row_cuts: Sequence[int] | None = None,
          col_cuts: Sequence[int] | None = None) -> ShardedSparse:
  """Splits a concrete sparse matrix across the devices of ``mesh``.

  Args:
    matrix: COO, CSR, BSR, NM or Tiled [M, K] with concrete (host or device) arrays.
    mesh: a ``jax.sharding.Mesh``.
    spec: ``PartitionSpec(row_axis, col_axis)`` (a tuple or a single axis name also works):
      the mesh axis (a name, a tuple of names, or None) whose devices split the rows, and the one
      that splits the columns (the contraction axis of SpMM). ``P("x")`` splits rows over "x";
      ``P(None, "x")`` splits columns (SpMM then sums the partial products with a ``psum``);
      ``P("x", "y")`` does both on a 2-D mesh.
    row_cuts, col_cuts: explicit cuts (``parts + 1`` nondecreasing ints from 0 to M or K,
      multiples of the block, tile or group size, or M or K); by default they balance stored
      values (see ``partition``). Give a layer's row cuts as the next layer's column cuts to keep
      the activations between them on their devices (the Megatron layout).

  Returns:
    A ``ShardedSparse`` whose pieces sit on their devices.
  """
  if not isinstance(matrix, SparseMatrix):
    raise TypeError(f"matrix must be a jsparse sparse matrix (COO, CSR, BSR, NM or Tiled), got "
                    f"{type(matrix).__name__}")
  if not isinstance(mesh, Mesh):
    raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
  if matrix.format not in partition.FORMATS:
    raise NotImplementedError(f"matrix is in format {matrix.format!r}; jsparse.shard splits "
                              f"{', '.join(partition.FORMATS)} matrices")
  partition.check_concrete("matrix", matrix)
  row_axis, col_axis = _check_spec(spec, mesh)
  units = (partition.cut_unit(matrix, 0), partition.cut_unit(matrix, 1))
  cuts = []
  for axis, (name, given, mesh_axis) in enumerate(
      (("row_cuts", row_cuts, row_axis), ("col_cuts", col_cuts, col_axis))):
    parts = axis_size(mesh, mesh_axis)
    if given is None:
      cuts.append(partition.matrix_cuts(matrix, axis, parts))
    else:
      cuts.append(partition.check_cuts(name, given, parts, matrix.shape[axis], units[axis]))
  pieces = partition.split(matrix, *cuts)
  pieces = place(pieces, mesh, PartitionSpec(row_axis, col_axis))
  return ShardedSparse(pieces, shape=matrix.shape, row_cuts=cuts[0], col_cuts=cuts[1], mesh=mesh,
                       row_axis=row_axis, col_axis=col_axis)


def unshard(sharded: ShardedSparse) -> SparseMatrix:
  """The global matrix of a ``ShardedSparse`` with concrete arrays (gathered to the host, then
  placed on the default device); padding is dropped, explicit zeros are kept."""
  if not isinstance(sharded, ShardedSparse):
    raise TypeError(f"sharded must be a jsparse.sharding.ShardedSparse, got "
                    f"{type(sharded).__name__}")
  partition.check_concrete("sharded.pieces", sharded.pieces)
  return partition.join(sharded.pieces, sharded.row_cuts, sharded.col_cuts, sharded.shape)


def _check_spec(spec: Any, mesh: Mesh) -> tuple[AxisName, AxisName]:
  if isinstance(spec, str) or spec is None:
    spec = (spec,)
  spec = tuple(spec)
  if len(spec) > 2:
    raise ValueError(f"spec must name at most two mesh axes (rows, columns) for a 2-D matrix, "
                     f"got {spec}")
  row_axis, col_axis = (*spec, None, None)[:2]
  for name, axis in (("spec[0] (rows)", row_axis), ("spec[1] (columns)", col_axis)):
    if axis is not None and not isinstance(axis, str) and not (
        isinstance(axis, tuple) and all(isinstance(a, str) for a in axis)):
      raise TypeError(f"{name} must be a mesh axis name, a tuple of names or None, got {axis!r}")
    axis_size(mesh, axis)
  overlap = set(_axis_names(row_axis)) & set(_axis_names(col_axis))
  if overlap:
    raise ValueError(f"spec splits rows and columns over the same mesh axis {sorted(overlap)}; "
                     f"use a different axis for each")
  return row_axis, col_axis
