"""SpMM, SpMV and SDDMM of sharded sparse matrices, through ``shard_map``.

Each device runs the single-device op (``jsparse.spmm`` / ``spmv`` / ``sddmm``, so whichever C++
or Pallas kernel serves its platform) on its own piece:

- rows split (``P("x")``): device i computes rows ``row_cuts[i]:row_cuts[i+1]`` of ``A @ B`` with
  B replicated, or with B's columns split over another mesh axis (``n_axis``);
- columns split (``P(None, "x")``, the K-split): device j multiplies its columns of A by the
  matching rows of B and a ``psum`` over "x" adds the partial products;
- both (``P("x", "y")``): the row pieces over "x", each summed over "y".

The dense operands come in replicated (B's columns may be split over a further mesh axis); each
device slices the rows it needs (rows of B by ``col_cuts``, rows of X in SDDMM by ``row_cuts``,
zero-padded to the piece size), and the row pieces of the result are ``all_gather``-ed and put
back in order, so the result is replicated over the row axis.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jsparse import ops
from jsparse.ops import _primitive
from jsparse.sharding import partition
from jsparse.sharding.sharded import AxisName, ShardedSparse, axis_size, place


def local_rows(array: jax.Array, cuts: Sequence[int], size: int, axis: AxisName) -> jax.Array:
  """Inside ``shard_map``: this device's rows ``cuts[p]:cuts[p+1]`` of ``array`` [L, ...], zero
  padded to ``size`` rows, where p is the device's index along the mesh axis ``axis``."""
  if axis is None:
    part = 0
  else:
    part = jax.lax.axis_index(axis)
  start = jnp.asarray(cuts[:-1], jnp.int32)[part]
  count = jnp.asarray(np.diff(cuts), jnp.int32)[part]
  padded = jnp.pad(array, [(0, size)] + [(0, 0)] * (array.ndim - 1))
  window = jax.lax.dynamic_slice_in_dim(padded, start, size, axis=0)
  inside = (jnp.arange(size) < count).reshape(size, *([1] * (array.ndim - 1)))
  return jnp.where(inside, window, jnp.zeros((), array.dtype))


def gather_rows(piece_rows: jax.Array, cuts: Sequence[int], axis: AxisName) -> jax.Array:
  """Inside ``shard_map``: every device's row piece [size, ...] gathered over the mesh axis
  ``axis`` and put in order, padding dropped: [cuts[-1], ...] on every device."""
  if axis is None:
    return piece_rows[:cuts[1]]
  size = piece_rows.shape[0]
  stacked = jax.lax.all_gather(piece_rows, axis, tiled=True)
  index = np.concatenate([p * size + np.arange(stop - start)
                          for p, (start, stop) in enumerate(zip(cuts, cuts[1:]))])
  return jnp.take(stacked, jnp.asarray(index, jnp.int32), axis=0)


def _check_sharded(name: str, matrix: Any) -> ShardedSparse:
  if not isinstance(matrix, ShardedSparse):
    raise TypeError(f"{name} must be a jsparse.sharding.ShardedSparse (see jsparse.shard), got "
                    f"{type(matrix).__name__}")
  return matrix


def _check_free_axis(A: ShardedSparse, name: str, axis: AxisName) -> None:
  axis_size(A.mesh, axis)
  used = {a for spec_axis in (A.row_axis, A.col_axis) if spec_axis is not None
          for a in ((spec_axis,) if isinstance(spec_axis, str) else spec_axis)}
  names = () if axis is None else ((axis,) if isinstance(axis, str) else tuple(axis))
  if used & set(names):
    raise ValueError(f"{name}={axis!r} must be a mesh axis that does not split A (A is split over "
                     f"{sorted(used)})")


def _local(pieces):
  """The single piece a device holds (its two leading axes have size 1)."""
  return partition.piece(pieces, 0, 0)


def _contract(A: ShardedSparse, dense: jax.Array, local_op: Callable, n_axis: AxisName):
  """A @ dense for dense [K] or [K, N]: the shared body of the sharded SpMM and SpMV."""
  trailing = (n_axis,) if dense.ndim == 2 else ()

  def body(pieces, dense):
    out = local_op(_local(pieces), local_rows(dense, A.col_cuts, A.piece_shape[1], A.col_axis))
    if A.col_axis is not None:
      out = jax.lax.psum(out, A.col_axis)
    return gather_rows(out, A.row_cuts, A.row_axis)

  dense_spec = P(None, *trailing)
  return jax.shard_map(body, mesh=A.mesh, in_specs=(A.spec, dense_spec), out_specs=dense_spec,
                       check_vma=False)(A.pieces, place(dense, A.mesh, dense_spec))


def spmm(A: ShardedSparse, B: Any, *, n_axis: AxisName = None, impl: str = "auto") -> jax.Array:
  """``A @ B`` for a sharded sparse A, each device running ``jsparse.spmm`` on its piece.

  Args:
    A: sharded sparse [M, K] (see ``jsparse.shard``).
    B: dense [K, N]; replicated, or with its columns split over the mesh axis ``n_axis``.
    n_axis: a mesh axis that A does not use, over which B's columns (and the result's) are
      split; N must then be a multiple of its size.
    impl: the per-device backend, as in ``jsparse.spmm``.

  Returns:
    dense [M, N] of the promoted dtype, equal to ``jsparse.spmm(unshard(A), B)``.
  """
  A = _check_sharded("A", A)
  B = _primitive.check_dense("B", B, 2, "[K, N]")
  _primitive.check_length("B.shape[0]", B.shape[0], A.shape[1], "it must equal A.shape[1]")
  _check_free_axis(A, "n_axis", n_axis)
  if B.shape[1] % axis_size(A.mesh, n_axis):
    raise ValueError(f"B.shape[1]={B.shape[1]} must be a multiple of the {axis_size(A.mesh, n_axis)}"
                     f" devices of n_axis={n_axis!r}")
  return _contract(A, B, lambda piece, b: ops.spmm(piece, b, impl=impl), n_axis)


def spmv(A: ShardedSparse, x: Any, *, impl: str = "auto") -> jax.Array:
  """``A @ x`` for a sharded sparse A [M, K] and a dense vector x [K]: dense [M], each device
  running ``jsparse.spmv`` on its piece (column pieces summed with a ``psum``)."""
  A = _check_sharded("A", A)
  x = _primitive.check_dense("x", x, 1, "[K]")
  _primitive.check_length("x", x.shape[0], A.shape[1], "it must equal A.shape[1]")
  return _contract(A, x, lambda piece, v: ops.spmv(piece, v, impl=impl), None)


def sddmm(pattern: ShardedSparse, X: Any, Y: Any, *, impl: str = "auto") -> ShardedSparse:
  """Sampled product ``X[i] . Y[j]`` at every stored (i, j) of a sharded pattern.

  Args:
    pattern: sharded sparse [M, N]; only its structure is read.
    X: dense [M, D]; Y: dense [N, D].
    impl: the per-device backend, as in ``jsparse.sddmm``.

  Returns:
    A ``ShardedSparse`` with ``pattern``'s pieces and placement and the new values; its
    ``unshard`` equals ``jsparse.sddmm(unshard(pattern), X, Y)``.
  """
  pattern = _check_sharded("pattern", pattern)
  X = _primitive.check_dense("X", X, 2, "[M, D]")
  Y = _primitive.check_dense("Y", Y, 2, "[N, D]")
  _primitive.check_length("X.shape[0]", X.shape[0], pattern.shape[0],
                          "it must equal pattern.shape[0]")
  _primitive.check_length("Y.shape[0]", Y.shape[0], pattern.shape[1],
                          "it must equal pattern.shape[1]")
  _primitive.check_length("Y.shape[1]", Y.shape[1], X.shape[1], "it must equal X.shape[1]")

  def body(pieces, x, y):
    x = local_rows(x, pattern.row_cuts, pattern.piece_shape[0], pattern.row_axis)
    y = local_rows(y, pattern.col_cuts, pattern.piece_shape[1], pattern.col_axis)
    return ops.sddmm(_local(pieces), x, y, impl=impl).data[None, None]

  values = jax.shard_map(body, mesh=pattern.mesh, in_specs=(pattern.spec, P(), P()),
                         out_specs=pattern.spec, check_vma=False)(
                             pattern.pieces, *place((X, Y), pattern.mesh, P()))
  return pattern.with_data(values)
