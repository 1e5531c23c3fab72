"""The base class of jsparse's sparse matrices: pytree plumbing and the shared properties."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation
from jsparse.formats.layout import SparseLayout


class SparseMatrix:
  """A 2-D sparse matrix held as a pytree: arrays are children, structure is static aux data.

  Subclasses define ``format``, ``index_names`` (the index arrays, in operand order) and
  ``_aux_names`` (static attributes beside ``shape``), and implement ``todense`` and ``tocoo``.
  Every matrix has ``data`` (the stored values) and its index arrays as attributes.
  """

  format: ClassVar[str]
  index_names: ClassVar[tuple[str, ...]]
  _aux_names: ClassVar[tuple[str, ...]] = ()
  data: jax.Array
  shape: tuple[int, int]
  # NumPy defers ``ndarray @ sparse`` to ``__rmatmul__`` instead of treating us as an object.
  __array_ufunc__ = None

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

  # -- pytree ----------------------------------------------------------------------------------
  def _tree_flatten(self):
    children = (self.data, *self.index_arrays)
    aux = (self.shape,) + tuple(getattr(self, name) for name in self._aux_names)
    return children, aux

  @classmethod
  def _tree_unflatten(cls, aux, children):
    # Bypasses __init__: children may be tracers, None or sentinels inside JAX transformations.
    matrix = object.__new__(cls)
    matrix.data = children[0]
    for name, array in zip(cls.index_names, children[1:]):
      setattr(matrix, name, array)
    matrix.shape = aux[0]
    for name, value in zip(cls._aux_names, aux[1:]):
      setattr(matrix, name, value)
    return matrix

  def with_data(self, data: Any) -> "SparseMatrix":
    """The same structure with new stored values (same shape as ``self.data``, any float dtype)."""
    data = jnp.asarray(data)
    validation.check_value_dtype("data", data)
    if data.shape != self.data.shape:
      raise ValueError(f"data must have shape {self.data.shape} (the stored values of this "
                       f"matrix), got {data.shape}")
    children, aux = self._tree_flatten()
    return self._tree_unflatten(aux, (data, *children[1:]))

  # -- structure -------------------------------------------------------------------------------
  @property
  def index_arrays(self) -> tuple[jax.Array, ...]:
    return tuple(getattr(self, name) for name in self.index_names)

  @property
  def layout(self) -> SparseLayout:
    return SparseLayout(self.format, tuple(self.shape), **self._layout_extras())

  def _layout_extras(self) -> dict:
    return {}

  @property
  def dtype(self) -> np.dtype:
    return self.data.dtype

  @property
  def ndim(self) -> int:
    return 2

  @property
  def size(self) -> int:
    return math.prod(self.shape)

  @property
  def nse(self) -> int:
    """Number of stored entries (blocks for BSR), padding included."""
    return int(self.data.shape[0])

  @property
  def nnz(self) -> int:
    """Number of stored values (explicit zeros and padding included), as in SciPy."""
    return int(math.prod(self.data.shape))

  @property
  def density(self) -> float:
    return self.nnz / self.size if self.size else 0.0

  def astype(self, dtype: Any) -> "SparseMatrix":
    return self.with_data(self.data.astype(dtype))

  def __repr__(self) -> str:
    extras = "".join(f", {name}={getattr(self, name)}" for name in self._aux_names)
    return (f"{type(self).__name__}(shape={tuple(self.shape)}, dtype={self.dtype}, "
            f"nse={self.nse}{extras})")

  # -- conversions shared by every format -----------------------------------------------------
  def todense(self) -> jax.Array:
    raise NotImplementedError

  def tocoo(self):
    raise NotImplementedError

  def tocsr(self):
    return self.tocoo().tocsr()

  def tobsr(self, block_shape: Sequence[int], nse: int | None = None):
    """Converts to BSR through the dense matrix (blocks that hold only zeros are dropped)."""
    from jsparse.formats.bsr import BSR
    return BSR.fromdense(self.todense(), block_shape=block_shape, nse=nse)

  def to_scipy(self):
    """A SciPy sparse array of this matrix (padding dropped), in the nearest SciPy format."""
    return self.tocoo().to_scipy()

  def to_bcoo(self):
    """A ``jax.experimental.sparse.BCOO`` with the same entries."""
    return self.tocoo().to_bcoo()

  def to_bcsr(self):
    """A ``jax.experimental.sparse.BCSR`` with the same entries."""
    return self.tocsr().to_bcsr()

  # -- arithmetic ------------------------------------------------------------------------------
  def __matmul__(self, other: Any) -> jax.Array:
    from jsparse.ops import spmm, spmv
    if jnp.ndim(other) == 1:
      return spmv(self, other)
    return spmm(self, other)

  def __rmatmul__(self, other: Any) -> jax.Array:
    """``x @ A`` for dense ``x`` [N, M] or [M]: computed as ``(A.T @ x.T).T`` by one SpMM."""
    from jsparse.ops import spmm, spmv
    if jnp.ndim(other) == 1:
      return spmv(self, other, transpose_a=True)
    return spmm(self, jnp.swapaxes(other, -1, -2), transpose_a=True).T


def scipy_dtype(dtype: Any) -> Any:
  """SciPy sparse has no bfloat16 or float16: such values go to SciPy as float32."""
  return np.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
