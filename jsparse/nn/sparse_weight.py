"""NNX state of a sparse weight: trainable values, a fixed pattern, static structure."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx

from jsparse.formats import SparseMatrix
from jsparse.pruning import patterns


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

  @classmethod
  def pruned(cls, weight: jax.Array, *, mask: Any, format: str, sparsity: float | None,
             method: str, nm: Sequence[int], block_shape: Sequence[int],
             rngs: nnx.Rngs) -> "SparseWeight":
    """``weight`` [out, in] kept where ``mask`` is True (when None, the mask of ``method``
    at ``sparsity``, drawn from ``rngs.params()``), stored in ``format``."""
    if mask is None:
      rng = np.random.default_rng(np.asarray(jax.random.key_data(rngs.params())).ravel())
      mask = patterns.default_mask(weight, format=format, sparsity=sparsity, method=method,
                                   nm=nm, block_shape=block_shape, rng=rng)
    return cls(patterns.sparse_from_mask(weight, mask, format=format, block_shape=block_shape,
                                         nm=nm))

  @property
  def format(self) -> str:
    return self.matrix_type.format

  @property
  def matrix(self) -> SparseMatrix:
    """The weight as a jsparse matrix (values and pattern as they are now)."""
    arrays = [self.values[...]] + [getattr(self, name)[...] for name in self.matrix_type.index_names]
    return jax.tree_util.tree_unflatten(self.treedef, arrays)
