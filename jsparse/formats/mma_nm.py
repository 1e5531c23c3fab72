"""MmaNM: a 2:4 matrix stored in the register order of the sparse tensor cores' warp-level
``mma.sp`` (the layout of jsparse's decoding kernel, ``csrc/cuda/sparse_mma_ffi.cu``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse.formats import validation
from jsparse.formats.nm import NM

DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
ROWS, COLUMNS = 16, 64  # a row tile of mma.m16n8k32; a pair of its 32-column steps
# Positions of a padding group (all zeros): 0 and 1, a valid pattern for mma.sp.
PADDING_POSITIONS = (0, 1)
# A metadata word of lane (g, t = 2 s + u): step s, groups 4u..4u+3 of the step, row g in the
# low 16 bits and row g + 8 in the high, 4 bits a group (first position in bits 0-1). The H100
# reads this layout (experiments/results/h100-2026-11-27-sparse-mma/, layouts.md).
_META_SHIFTS = (16 * np.arange(2)[:, None] + 4 * np.arange(4)[None, :]).astype(np.uint32)


def tiles(shape: tuple[int, int]) -> tuple[int, int]:
  """(Mt, P): row tiles of 16 and pairs of 32-column steps of an [M, K] matrix."""
  m, k = shape
  return -(-m // ROWS), -(-k // COLUMNS)


@dataclasses.dataclass(frozen=True)
class MmaNM:
  """A 2:4 [M, K] matrix (bfloat16/float16) in the order ``mma.m16n8k32``'s registers take it.

  ``jsparse.spmm(A, B)`` on it runs jsparse's decoding kernel on the sparse tensor cores (a CUDA
  GPU, B with A's dtype and at most ``jsparse._gpu.sparse_mma.MAX_N`` columns); elsewhere it
  expands A (``todense``) and multiplies densely. Built once per weight by ``from_nm`` (under
  ``jit`` too, on the device that holds the matrix). For inference: the kernel has no autodiff.

  Attributes:
    values: uint32 [Mt, P, 2, 32, 4] (Mt = ceil(M / 16) row tiles, P = ceil(K / 64) pairs of
      32-column steps, the step, the lane, the lane's four A registers): lane (g, t) holds row
      g's group t, row g + 8's group t, row g's group t + 4, row g + 8's group t + 4 of the
      step's 8 groups of 4 columns, each word a group's two kept values (lower position first).
    meta: uint32 [Mt, P, 32], the positions: a lane's word covers 4 groups of rows g and g + 8
      (lanes t = 0, 1 of a quad step 0, lanes 2, 3 step 1).
    shape: (M, K), static; K a multiple of 4. Padding (rows to 16, columns to 64) is zeros.
    dtype: bfloat16 or float16, static.

  The constructor's ``validate`` checks on the host that every group's two positions increase
  (what ``mma.sp::ordered_metadata`` needs; anything else is undefined on the GPU). None: when
  the arrays are concrete. ``from_nm`` and JAX's rebuilding of the pytree skip it.
  """

  values: jax.Array
  meta: jax.Array
  shape: tuple[int, int]
  dtype: Any
  validate: dataclasses.InitVar[bool | None] = None

  def __post_init__(self, validate: bool | None):
    shape = validation.check_shape_2d(self.shape)
    object.__setattr__(self, "shape", shape)
    if shape[1] % 4:
      raise ValueError(f"shape[1] must be a multiple of 4 (groups of 4), got {shape}")
    if jnp.dtype(self.dtype) not in DTYPES:
      raise TypeError(f"dtype must be bfloat16 or float16 (mma.sp's operands), got {self.dtype}")
    object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
    m_tiles, pairs = tiles(shape)
    # JAX rebuilds the pytree with placeholders: check arrays only.
    for name, expected in (("values", (m_tiles, pairs, 2, 32, 4)), ("meta", (m_tiles, pairs, 32))):
      array = getattr(self, name)
      if hasattr(array, "shape") and hasattr(array, "dtype") and (
          tuple(array.shape) != expected or jnp.dtype(array.dtype) != jnp.uint32):
        raise ValueError(f"{name} must be uint32 {expected} for shape {shape}, got "
                         f"{array.dtype} {tuple(array.shape)}")
    if validation.should_validate(validate, self.values, self.meta):
      _check_positions(self.meta)

  @classmethod
  def from_nm(cls, matrix: NM) -> "MmaNM":
    """The same 2:4 matrix in mma.sp's order. Raises ValueError/TypeError naming ``matrix``
    when it is not a 2:4 ``jsparse.NM`` of bfloat16/float16 values."""
    if not isinstance(matrix, NM):
      raise TypeError(f"matrix must be a jsparse.NM, got {type(matrix).__name__}")
    if (matrix.n, matrix.m) != (2, 4):
      raise ValueError(f"matrix must be 2:4 for mma.sp, got {matrix.n}:{matrix.m}")
    if jnp.dtype(matrix.dtype) not in DTYPES:
      raise TypeError(f"matrix must hold bfloat16 or float16 values for mma.sp, got "
                      f"{matrix.dtype}")
    values, meta = pack(matrix.data, matrix.indices, matrix.shape)
    # An NM matrix's positions increase in every group by construction.
    return cls(values, meta, tuple(matrix.shape), matrix.dtype, validate=False)

  @classmethod
  def fromdense(cls, x: Any, *, prune: bool = True) -> "MmaNM":
    """``from_nm(NM.fromdense(x, n=2, m=4, prune=prune))``: x [M, K] bfloat16/float16."""
    return cls.from_nm(NM.fromdense(x, n=2, m=4, prune=prune))

  def todense(self) -> jax.Array:
    """The dense [M, K] matrix."""
    return unpack(self.values, self.meta, self.shape, self.dtype)

  def __matmul__(self, other: Any) -> jax.Array:
    """``A @ B``: ``jsparse.spmm(A, B)``."""
    from jsparse.ops.spmm import spmm
    return spmm(self, other)


jax.tree_util.register_pytree_node(
    MmaNM, lambda a: ((a.values, a.meta), (a.shape, a.dtype)),
    lambda aux, children: MmaNM(*children, *aux, validate=False))


def _check_positions(meta: Any) -> None:
  """Raises ValueError naming ``meta`` unless every group's two positions (4 bits a group:
  first in bits 0-1, second in bits 2-3) satisfy first < second."""
  nibbles = (np.asarray(meta)[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
  first, second = nibbles & 3, nibbles >> 2
  bad = np.argwhere(first >= second)
  if bad.size:
    tile, pair, lane, group = (int(i) for i in bad[0])
    raise ValueError(f"meta[{tile}, {pair}, {lane}] holds positions ({first[tuple(bad[0])]}, "
                     f"{second[tuple(bad[0])]}) for its group {group}: each group's two kept "
                     "positions must increase (0 <= first < second <= 3)")


def _padded_groups(data: Any, indices: Any, shape: tuple[int, int]):
  """data, positions [Mt * 16, P * 16, 2], zero-padded; padding groups at positions (0, 1)."""
  m, k = shape
  m_tiles, pairs = tiles(shape)
  pad = ((0, m_tiles * ROWS - m), (0, pairs * COLUMNS // 4 - k // 4), (0, 0))
  data = jnp.pad(jnp.asarray(data).reshape(m, k // 4, 2), pad)
  positions = jnp.pad(jnp.asarray(indices).astype(jnp.uint32).reshape(m, k // 4, 2), pad)
  padding = jnp.pad(jnp.zeros((m, k // 4), bool), pad[:2], constant_values=True)
  positions = jnp.where(padding[..., None], jnp.asarray(PADDING_POSITIONS, jnp.uint32), positions)
  return data, positions


def pack(data: Any, indices: Any, shape: tuple[int, int]) -> tuple[jax.Array, jax.Array]:
  """A 2:4 matrix's ``data`` [M, K/2] (bfloat16/float16) and ``indices`` (uint8 [M, K/2],
  increasing in each group) -> ``(values, meta)`` of ``MmaNM``."""
  m_tiles, pairs = tiles(shape)
  data, positions = _padded_groups(data, indices, shape)
  # Row = 8 * half + g, a step's group = 4 * high + t; lane (g, t) word 2 * high + half.
  values = data.reshape(m_tiles, 2, 8, pairs, 2, 2, 4, 2).transpose(0, 3, 4, 2, 6, 5, 1, 7)
  values = jax.lax.bitcast_convert_type(values, jnp.uint32).reshape(m_tiles, pairs, 2, 32, 4)
  nibbles = positions[..., 0] | (positions[..., 1] << 2)  # [Mt * 16, P * 16]
  # [Mt, half, g, P, s, u, c] -> [Mt, P, g, s, u, half, c]: lane (g, 2 s + u).
  nibbles = nibbles.reshape(m_tiles, 2, 8, pairs, 2, 2, 4).transpose(0, 3, 2, 4, 5, 1, 6)
  meta = (nibbles << _META_SHIFTS).sum(axis=(-2, -1), dtype=jnp.uint32)
  return values, meta.reshape(m_tiles, pairs, 32)


def unpack(values: Any, meta: Any, shape: tuple[int, int], dtype: Any) -> jax.Array:
  """The dense [M, K] matrix of ``dtype`` that ``pack``'s arrays hold."""
  m, k = shape
  m_tiles, pairs = tiles(shape)
  data = jax.lax.bitcast_convert_type(jnp.asarray(values).reshape(m_tiles, pairs, 2, 8, 4, 2, 2),
                                      jnp.dtype(dtype))  # [Mt, P, s, g, t, high, half, v]
  data = data.transpose(0, 6, 3, 1, 2, 5, 4, 7).reshape(m_tiles * ROWS, pairs * 16, 2)
  words = jnp.asarray(meta).reshape(m_tiles, pairs, 8, 2, 2)  # [Mt, P, g, s, u]
  nibbles = (words[..., None, None] >> _META_SHIFTS) & 0xF  # [Mt, P, g, s, u, half, c]
  nibbles = nibbles.transpose(0, 5, 2, 1, 3, 4, 6).reshape(m_tiles * ROWS, pairs * 16)
  positions = jnp.stack([nibbles & 3, nibbles >> 2], axis=-1)
  slots = jnp.arange(4, dtype=positions.dtype)
  dense = jnp.where(positions[..., :1] == slots, data[..., :1], 0) + jnp.where(
      positions[..., 1:] == slots, data[..., 1:], 0)  # [rows, groups, 4]
  return dense.astype(dtype).reshape(m_tiles * ROWS, pairs * COLUMNS)[:m, :k]
