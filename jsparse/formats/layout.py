"""The static description of a sparse matrix that primitives carry as a parameter."""

from __future__ import annotations

import dataclasses

FORMATS = ("coo", "csr", "bsr", "nm", "tiled")


class LaunchHint:
  """A static fact about a matrix that changes how fast a kernel runs, never what it computes
  (e.g. "the rows need no launch schedule"). It rides in the pytree structure and the layout so
  that it reaches the kernels under ``jit``, but every hint equals every other and they hash
  alike: matrices that differ only in a hint have the same pytree structure (they stack, ``vmap``
  and share ``jit`` cache entries, where the first compiled wins) and equal layouts."""

  __slots__ = ("value",)

  def __init__(self, value: bool = False):
    self.value = bool(value)

  def __bool__(self) -> bool:
    return self.value

  def __eq__(self, other) -> bool:
    return isinstance(other, LaunchHint)

  def __hash__(self) -> int:
    return hash(LaunchHint)

  def __repr__(self) -> str:
    return f"LaunchHint({self.value})"


@dataclasses.dataclass(frozen=True)
class SparseLayout:
  """Static (hashable) structure of a sparse matrix: everything but its arrays.

  Attributes:
    format: ``"coo"``, ``"csr"``, ``"bsr"`` or ``"nm"``.
    shape: ``(M, K)``, the dense shape.
    block_shape: ``(bm, bk)`` for BSR, else None.
    nm: ``(n, m)`` for N:M (n kept of every m along K), else None.
    natural_row_order: CSR only: the rows were seen on the host to need no schedule (already in
      the GPU kernels' order, or balanced: ``_structure.rows_in_launch_order``), so the
      kernels launch them in order instead of computing the schedule each call; false when
      unknown. A ``LaunchHint``: layouts that differ only in it compare equal.
    operand_transposed: a fact about the call, not the matrix: the product's dense operand B
      is the transpose of a row-major array and its result is transposed back (a layer's
      ``x @ W.T`` as ``spmm(W, x.T).T``: ``jsparse.ops.matmul_transposed``). A kernel needing B
      row-major pays for both transposes, one that contracts through XLA's dot does not; the
      GPU path choice weighs that. A ``LaunchHint``.
  """

  format: str
  shape: tuple[int, int]
  block_shape: tuple[int, int] | None = None
  nm: tuple[int, int] | None = None
  natural_row_order: LaunchHint = LaunchHint(False)
  operand_transposed: LaunchHint = LaunchHint(False)

  def __post_init__(self):
    for name in ("natural_row_order", "operand_transposed"):
      if not isinstance(getattr(self, name), LaunchHint):
        object.__setattr__(self, name, LaunchHint(getattr(self, name)))
    if self.format not in FORMATS:
      raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")

  @property
  def transposed_shape(self) -> tuple[int, int]:
    return (self.shape[1], self.shape[0])
