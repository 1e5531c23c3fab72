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
    natural_row_order: CSR only: the rows were seen on the host to need no schedule (already in
      the GPU kernels' order, or balanced: ``_structure.rows_in_launch_order``), so the
      kernels launch them in order instead of computing the schedule each call; False when
      unknown.
  """

  format: str
  shape: tuple[int, int]
  block_shape: tuple[int, int] | None = None
  nm: tuple[int, int] | None = None
  natural_row_order: bool = False

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")

  @property
  def transposed_shape(self) -> tuple[int, int]:
    return (self.shape[1], self.shape[0])
