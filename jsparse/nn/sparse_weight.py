"""NNX state of a sparse weight: trainable values, a fixed pattern, static structure."""

from __future__ import annotations

import jax
from flax import nnx

from jsparse.formats import SparseMatrix


class SparsityPattern(nnx.Variable):
  """Index arrays of a sparse weight: saved and restored with the model, never trained."""


class SparseWeight(nnx.Module):
  """A jsparse matrix as NNX state.

  ``values`` (``nnx.Param``, the matrix's ``data``) is trainable; the index arrays are
  ``SparsityPattern`` variables named as in the format (``col_indices``, ``row_offsets``,
  ``indices``); format, shape, block shape and (n, m) are static. ``nnx.grad`` and optimizers
  see only the values, so the pattern stays fixed while training.
  """

  def __init__(self, matrix: SparseMatrix):
    if not isinstance(matrix, SparseMatrix):
      raise TypeError(f"matrix must be a jsparse sparse matrix, got {type(matrix).__name__}")
    _, aux = jax.tree_util.tree_flatten(matrix)
    self.matrix_type = type(matrix)
    self.treedef = aux
    self.values = nnx.Param(matrix.data)
    for name, array in zip(matrix.index_names, matrix.index_arrays):
      setattr(self, name, SparsityPattern(array))

  @property
  def format(self) -> str:
    return self.matrix_type.format

  @property
  def matrix(self) -> SparseMatrix:
    """The weight as a jsparse matrix (values and pattern as they are now)."""
    arrays = [self.values[...]] + [getattr(self, name)[...] for name in self.matrix_type.index_names]
    return jax.tree_util.tree_unflatten(self.treedef, arrays)
