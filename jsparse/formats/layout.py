"""The static description of a sparse matrix that primitives carry as a parameter."""

from __future__ import annotations

import dataclasses

FORMATS = ("coo", "csr", "bsr", "nm", "tiled")


@dataclasses.dataclass(frozen=True)
class SparseLayout:
  """Static (hashable) structure of a sparse matrix: everything but its arrays.

  Attributes:
    format: ``"coo"``, ``"csr"``, ``"bsr"`` or ``"nm"``.
    shape: ``(M, K)``, the dense shape.
    block_shape: ``(bm, bk)`` for BSR, else None.
    nm: ``(n, m)`` for N:M (n kept of every m along K), else None.
  """

  format: str
  shape: tuple[int, int]
  block_shape: tuple[int, int] | None = None
  nm: tuple[int, int] | None = None

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")

  @property
  def transposed_shape(self) -> tuple[int, int]:
    return (self.shape[1], self.shape[0])
