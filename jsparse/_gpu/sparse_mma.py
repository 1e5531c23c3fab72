"""Sparse products for decoding (N <= 32 columns) on the tensor cores through warp-level ``mma``
in CUDA custom calls (``csrc/cuda/sparse_mma_ffi.cu``): 2:4 weights on the sparse tensor cores
(``mma.sp``), unstructured ``Tiled`` weights expanded into dense fragments.

Decoding multiplies a large weight by a few columns: the time is the weight's bytes over the
memory bandwidth. A 2:4 weight holds half the values plus 4 bits of positions a group of 4
(0.56x dense's bytes). The Pallas kernels expand it to dense tiles with selects and are bound by
that arithmetic (BUILD_NOTES.md); cuSPARSELt's kernels are slower than dense at N <= 16. Here
the sparse tensor cores do the expansion: the weight is stored once in the order of the
``mma.m16n8k32`` registers (``MmaNM.from_nm``), each lane streams its operands with 16-byte loads, and a
block's warps split K and sum their tiles in shared memory.

- The weight: ``jsparse.MmaNM`` (``jsparse.formats.mma_nm``, ``MmaNM.from_nm(matrix)``).
- ``tiled_matmul``: the same for unstructured weights held as ``jsparse.Tiled`` with 16x64
  tiles ("load as sparse, compute as dense"): each tile's packed values and bitmaps are expanded
  into the dense ``mma.m16n8k16`` A fragments in registers. ``jsparse.spmm`` on such a matrix
  runs it on the GPU for 1..``MAX_N`` columns, except 1-2 columns of sparse tiles, which take
  the CUDA-core kernel ``jsparse._gpu.tiled_gemv`` (``jsparse._gpu.structured``).
- ``matmul(a, x)``: A [M, K] @ x [K, N] -> [M, N]; with ``tokens_major``, x [N, K] -> [N, M]
  (a layer's x @ A.T). bfloat16 or float16 (A's and x's dtype alike), float32 accumulation;
  N <= ``MAX_N``. ``jsparse.spmm`` on an ``MmaNM`` calls it (``jsparse.ops.mma_nm``).

GPU-only (sm_80+, built for sm_90): ``available()`` says whether the library loads (building it
with nvcc if needed); ``python -m jsparse._gpu.sparse_mma build`` builds it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import pathlib
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse._gpu import nvcc
from jsparse.formats.mma_nm import DTYPES, MmaNM
from pallas_kernels import _common

SOURCE = nvcc.SOURCE_DIR / "sparse_mma_ffi.cu"
TARGET = "jsparse_sparse_mma_matmul"
TILED_TARGET = "jsparse_tiled_mma_matmul"
# jsparse.Tiled matrices the tiled kernel reads: 16x64 tiles.
TILED_TILE_SHAPE = (16, 64)
MAX_N = 32
# A ``CompressedNM`` holding an ``MmaNM`` copy sends calls of up to this many columns to the
# kernel (jsparse.ops.compressed_nm.route). H100, bf16, kernel time: 1.67-1.94x dense at N = 1, 8,
# 16 on 14336x4096 and 4096x14336 (Pallas: 1.11-1.46x); Llama-3-8B's MLP block 1.65x / 1.47x at
# 8 / 16 tokens, but 0.96x at 32, where the Pallas path took 1.04x
# (experiments/results/h100-2026-11-27-sparse-mma/).
ROUTE_MAX_N = 16


@dataclasses.dataclass(frozen=True)
class SparseMmaConfig:
  """A launch: ``m_tiles`` row tiles of 16 a block (1 or 2), ``warps`` warps a block splitting
  K (1-8), ``staged``: x through shared memory and ldmatrix (None: where its rows are 16-byte
  aligned, K % 8 == 0 tokens-major, N % 8 == 0 otherwise)."""
  m_tiles: int = 1
  warps: int = 8
  staged: bool | None = None

  def __post_init__(self):
    if self.m_tiles not in (1, 2):
      raise ValueError(f"m_tiles must be 1 or 2, got {self.m_tiles}")
    if not 1 <= self.warps <= 8:
      raise ValueError(f"warps must be 1..8, got {self.warps}")


def library_path() -> pathlib.Path:
  return nvcc.library_path(SOURCE, "jsparse_sparse_mma")


def build(verbose: bool = False) -> pathlib.Path:
  """Compiles the library with nvcc (sm_90); returns its path."""
  return nvcc.build(SOURCE, library_path(), verbose=verbose)


@functools.lru_cache(maxsize=None)
def load() -> ctypes.CDLL:
  """The library (built first if missing), its handler registered as a jax.ffi target."""
  return nvcc.load(library_path(), build, {TARGET: "JsparseSparseMmaMatmul",
                                          TILED_TARGET: "JsparseTiledMmaMatmul"})


@functools.lru_cache(maxsize=None)
def available() -> bool | str:
  """True when a CUDA device is visible and the library loads (building it if needed), else
  why not; decided once a process."""
  return nvcc.availability(load)


def default_config(n: int) -> SparseMmaConfig:
  """The launch for n columns: two row tiles a block from two column tiles (N > 8) up, where
  the B fragments they share halve the shared-memory reads (H100, 14336x4096 @ 16: 26.3 us
  against 31.7 with one; experiments/results/h100-2026-11-27-sparse-mma/)."""
  return SparseMmaConfig(m_tiles=1 if n <= 8 else 2)


def matmul(a: MmaNM, x: jax.Array, *, tokens_major: bool = False,
           config: SparseMmaConfig | None = None) -> jax.Array:
  """A @ x for A [M, K]: x [K, N] -> [M, N]; with ``tokens_major``, x [N, K] -> x @ A.T
  [N, M]. x bfloat16/float16 of A's dtype, 1 <= N <= ``MAX_N``. Raises ValueError/TypeError
  naming the argument that is wrong; RuntimeError without the library."""
  if not isinstance(a, MmaNM):
    raise TypeError(f"a must be a jsparse.MmaNM, got {type(a).__name__}")
  m, k = a.shape
  if jnp.ndim(x) != 2:
    raise ValueError(f"x must be 2-D, got shape {jnp.shape(x)}")
  if jnp.dtype(x.dtype) != a.dtype:
    raise TypeError(f"x must have A's dtype {a.dtype}, got {x.dtype}")
  n, x_k = (x.shape if tokens_major else x.shape[::-1])
  if x_k != k:
    raise ValueError(f"x's contraction size {x_k} does not match A's K = {k}")
  if not 1 <= n <= MAX_N:
    raise ValueError(f"x has {n} columns; the mma.sp kernel takes 1..{MAX_N}")
  config = config or default_config(n)
  verdict = available()
  if verdict is not True:
    raise RuntimeError(f"the mma.sp kernel needs a CUDA GPU and its library: {verdict}")
  out_shape = (n, m) if tokens_major else (m, n)
  return jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct(out_shape, x.dtype),
                          vmap_method="sequential")(
      a.values, a.meta, x, m=np.int64(m), k=np.int64(k), tokens_major=np.int64(tokens_major),
      m_tiles=np.int64(config.m_tiles), warps=np.int64(config.warps),
      staged=np.int64(-1 if config.staged is None else int(config.staged)))


def tiled_operands_match(tile_shape: tuple[int, int], dtype: Any, x_dtype: Any) -> bool:
  """Whether the CUDA tiled kernels (this one and ``jsparse._gpu.tiled_gemv``) read a Tiled
  matrix of ``tile_shape`` and ``dtype`` times x of ``x_dtype``: 16x64 tiles, bfloat16/float16
  values and x alike."""
  return (tuple(tile_shape) == TILED_TILE_SHAPE and jnp.dtype(dtype) in DTYPES
          and jnp.dtype(x_dtype) == jnp.dtype(dtype))


def tiled_applies(shape: tuple[int, int], tile_shape: tuple[int, int], dtype: Any,
                  x_dtype: Any, n: int) -> bool:
  """Whether ``tiled_matmul`` takes a product of a Tiled [M, K] matrix by n columns: 16x64
  tiles, bfloat16/float16 values and x alike, 1 <= n <= ``MAX_N``, the library available."""
  return (tiled_operands_match(tile_shape, dtype, x_dtype) and 1 <= n <= MAX_N
          and available() is True)


def check_tiled_product(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array,
                        x: jax.Array, shape: tuple[int, int], max_n: int, kernel: str) -> int:
  """The checks the CUDA tiled kernels (``kernel``: its name in the messages) make of A @ x for
  a Tiled A [M, K] (``data`` [nse], ``bitmaps`` [ceil(M / 16), ceil(K / 64), 16, 2],
  ``row_offsets`` [ceil(M / 16), ceil(K / 64), 16]) and x [K, N], 1 <= N <= ``max_n``; returns
  N. Raises ValueError/TypeError naming the argument that is wrong."""
  m, k = shape
  if jnp.ndim(x) != 2 or x.shape[0] != k:
    raise ValueError(f"x must be [K, N] with K = {k}, got shape {jnp.shape(x)}")
  n = x.shape[1]
  if jnp.dtype(data.dtype) not in DTYPES or x.dtype != data.dtype:
    raise TypeError(f"data and x must be bfloat16 or float16 alike, got {data.dtype}, {x.dtype}")
  if jnp.ndim(data) != 1:
    raise ValueError(f"data must be 1-D [nse], got shape {jnp.shape(data)}")
  if tuple(bitmaps.shape[2:]) != (16, 2):
    raise ValueError(f"the {kernel} kernel reads 16x64 tiles; bitmaps are {bitmaps.shape}")
  grid = (-(-m // 16), -(-k // 64))
  if tuple(bitmaps.shape) != grid + (16, 2):
    raise ValueError(f"bitmaps must be [ceil(M / 16), ceil(K / 64), 16, 2] = "
                     f"{list(grid + (16, 2))} for shape {tuple(shape)}, got {bitmaps.shape}")
  if tuple(row_offsets.shape) != grid + (16,):
    raise ValueError(f"row_offsets must be [ceil(M / 16), ceil(K / 64), 16] = "
                     f"{list(grid + (16,))} for shape {tuple(shape)}, got {row_offsets.shape}")
  if not 1 <= n <= max_n:
    raise ValueError(f"x has {n} columns; the {kernel} kernel takes 1..{max_n}")
  return n


# The most values a 16x64 tile holds.
TILE_VALUES = 16 * 64


@dataclasses.dataclass(frozen=True)
class TiledMmaConfig:
  """A launch of the tiled kernel: ``m_tiles`` row tiles of 16 a block (1, 2 or 4, sharing x's
  staged columns; 4 with at most 8 warps, for its registers), ``warps`` warps a block splitting
  its K tiles (1-16), ``stages`` shared-memory slots a warp cycles its K tiles through (1-4;
  ``stages - 1`` tiles' copies in flight while it multiplies one), ``capacity`` the values a row
  tile's slot holds (a multiple of 8, 8..1024; below 1024 with ``m_tiles = 4`` only): a tile
  holding more is read from global memory instead (right, slower), so a capacity near a
  matrix's typical tile (``tile_capacity``) only saves shared memory; ``k_splits`` blocks
  splitting K for each group of row tiles (1-16; more than 1 writes float32 partial sums that
  ``tiled_matmul`` adds), ``x_sharing`` warps (1, 2 or 4) that take the same K tiles for
  different row tiles and stage x's columns once between them (more than 1: x [K, N], so N > 1;
  ``m_tiles`` 1 or 2, ``stages`` 2 or 3, ``warps`` a multiple of it; a block then computes
  ``m_tiles * x_sharing`` row tiles)."""
  m_tiles: int = 1
  warps: int = 8
  stages: int = 3
  capacity: int = TILE_VALUES
  k_splits: int = 1
  x_sharing: int = 1

  def __post_init__(self):
    if self.m_tiles not in (1, 2, 4):
      raise ValueError(f"m_tiles must be 1, 2 or 4, got {self.m_tiles}")
    if not 1 <= self.warps <= 16:
      raise ValueError(f"warps must be 1..16, got {self.warps}")
    if self.m_tiles == 4 and self.warps > 8:
      raise ValueError(f"m_tiles = 4 takes at most 8 warps (its registers), got {self.warps}")
    if not 1 <= self.k_splits <= 16:
      raise ValueError(f"k_splits must be 1..16, got {self.k_splits}")
    if not 1 <= self.stages <= 4:
      raise ValueError(f"stages must be 1..4, got {self.stages}")
    if not (8 <= self.capacity <= TILE_VALUES and self.capacity % 8 == 0):
      raise ValueError(f"capacity must be a multiple of 8 in 8..{TILE_VALUES}, "
                       f"got {self.capacity}")
    if self.capacity != TILE_VALUES and self.m_tiles != 4:
      raise ValueError(f"a capacity below {TILE_VALUES} needs m_tiles = 4 (got m_tiles = "
                       f"{self.m_tiles}, capacity = {self.capacity})")
    if self.x_sharing not in (1, 2, 4):
      raise ValueError(f"x_sharing must be 1, 2 or 4, got {self.x_sharing}")
    if self.x_sharing > 1 and (self.m_tiles == 4 or self.stages not in (2, 3)
                               or self.warps % self.x_sharing):
      raise ValueError(f"x_sharing = {self.x_sharing} needs m_tiles 1 or 2, stages 2 or 3 and "
                       f"warps a multiple of it (got m_tiles = {self.m_tiles}, stages = "
                       f"{self.stages}, warps = {self.warps})")

  def shared_bytes(self, n: int, tokens_major: bool) -> int:
    """Shared memory a block of this launch takes for n columns (the kernel's ring: per stage,
    x's staged 64 columns (tokens-major: of the n that exist) for each group of ``x_sharing``
    warps, plus each warp's row tiles' bitmaps and values; as RunTiled in
    csrc/cuda/sparse_mma_ffi.cu computes it). Raises ValueError for n outside 1..``MAX_N``."""
    if not 1 <= n <= MAX_N:
      raise ValueError(f"n must be 1..{MAX_N} (the tiled kernel's columns), got {n}")
    n_tiles = 1 if n <= 8 else 2 if n <= 16 else 4
    x_elems = (min(n, n_tiles * 8) * 72 if tokens_major  # a row a column that exists
               else 64 * (n_tiles * 8 + (8 if n_tiles > 1 else 0)))
    tile_elems = 16 * 2 * 2 + self.capacity + 8
    groups = self.warps // self.x_sharing
    ring = self.stages * (groups * x_elems + self.warps * self.m_tiles * tile_elems) * 2
    partials = self.warps * self.m_tiles * 16 * n_tiles * 8 * 4
    return max(ring, partials)

  def stages_x(self, n: int, k: int) -> bool:
    """Whether the kernel can stage x [k, n] for this launch as ``staged_product`` hands it
    over: x shared between warps (``x_sharing`` > 1) needs x [K, N], and one column with
    K % 8 == 0 comes tokens-major."""
    return self.x_sharing == 1 or not staged_tokens_major(k, n)

  def fits(self, n: int, k: int) -> bool:
    """Whether a block of this launch fits in shared memory for x [K, N] laid out as
    ``staged_product`` lays it out."""
    return self.shared_bytes(n, staged_tokens_major(k, n)) <= MAX_SHARED_BYTES


# Shared memory one block may take on sm_90 (227 KiB).
MAX_SHARED_BYTES = _common.HOPPER_SHARED_MEMORY_BYTES


# Streaming multiprocessors of an H100 / H200 SXM: the blocks a launch of one block an SM fills.
GPU_SMS = 132


# The mean values a 16x64 tile holds (of 1024) from which 2-8 columns share x's staging
# between pairs of warps (sparsity about 45% and below).
SHARE_X_MIN_FILL = 560


def default_tiled_config(n: int, m: int | None = None, k: int | None = None,
                         tile_fill: float | None = None) -> TiledMmaConfig:
  """The tiled kernel's launch for n columns of an [m, k] matrix whose 16x64 tiles hold
  ``tile_fill`` values on average (None: unknown).
  - Up to 8 columns: one row tile a warp, 16 warps a block (a wide weight's few row tiles then
    still fill the GPU), two slots (one tile's copies in flight while a warp multiplies
    another); from 2 columns and tiles of ``SHARE_X_MIN_FILL`` values, x staged once for each
    pair of warps. N = 8, H100 probe (experiments/results/h100-2026-11-27-tiled-shared-x/
    probe-n8/): sharing took 0.89x / 0.88x / 0.93x the time at 30% / 40% / 50% sparsity on
    4096x14336 and 0.96x / 0.97x at 30% / 40% on 14336x4096, but 1.03-1.07x from 70% on the
    first and from 50% on the second.
  - From 9 columns: two row tiles a warp, two slots, 16 warps in groups of four that share
    x's staged columns (a block: 8 row tiles, 128 rows). K is split over
    ``GPU_SMS // blocks`` blocks (at most 16, and at least 16 K tiles a split where k is known),
    so that a weight of few row tiles still fills the GPU with its one block an SM.
  H100, bf16, kernel time, 70% and 40% sparsity (experiments/results/h100-2026-11-27-tiled-
  shared-x/probe/): at N = 16 / 32, 4096x14336 (K split in four) 36.1 / 42.6 us at 70%
  against 49.1 / 52.8 for stop 32's launch (two row tiles, one slot, x staged a warp);
  14336x4096 39.7 / 47.1 against 47.1 / 66.7. At N = 8 and 70%, the launch of 9+ columns
  (K split in four) took 33.3 us on 4096x14336 against 31.9 for one row tile a warp."""
  if not 1 <= n <= MAX_N:
    raise ValueError(f"n must be 1..{MAX_N} (the tiled kernel's columns), got {n}")
  if tile_fill is not None and not 0 <= tile_fill <= TILE_VALUES:
    raise ValueError(f"tile_fill must be in 0..{TILE_VALUES} (values a 16x64 tile), "
                     f"got {tile_fill}")
  if n <= 8:
    full = tile_fill is not None and tile_fill >= SHARE_X_MIN_FILL
    return TiledMmaConfig(m_tiles=1, warps=16, stages=2, x_sharing=2 if n > 1 and full else 1)
  shared = TiledMmaConfig(m_tiles=2, warps=16, stages=2, x_sharing=4)
  if m is None:
    return shared
  blocks = -(-m // (16 * shared.m_tiles * shared.x_sharing))
  splits = max(1, min(16, GPU_SMS // blocks))
  if k is not None:
    splits = max(1, min(splits, -(-k // 64) // 16))
  return dataclasses.replace(shared, k_splits=splits)


def tiled_matmul(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, x: jax.Array, *,
                 shape: tuple[int, int], config: TiledMmaConfig | None = None) -> jax.Array:
  """A @ x for a ``jsparse.Tiled`` A [M, K] with 16x64 tiles (its ``data``, ``bitmaps``,
  ``row_offsets``) and x [K, N] of A's dtype (bfloat16/float16), N <= ``MAX_N``: [M, N]
  (x laid out by ``staged_product``). ``config``: None for ``default_tiled_config(N, M, K, the
  mean values a tile)``.
  Raises ValueError/TypeError naming what is wrong."""
  m, k = shape
  n = check_tiled_product(data, bitmaps, row_offsets, x, shape, MAX_N, "tiled")
  config = config or default_tiled_config(n, m, k, mean_tile_fill(data, bitmaps))
  if not config.stages_x(n, k):
    raise ValueError(f"config {config}: x_sharing > 1 stages x [K, N], but one column is "
                     f"handed over tokens-major; use x_sharing = 1 for N = 1")
  if not config.fits(n, k):
    used = config.shared_bytes(n, staged_tokens_major(k, n))
    raise ValueError(f"config {config} takes {used} bytes of shared memory at N = {n}, more "
                     f"than a block may ({MAX_SHARED_BYTES})")
  load()
  offsets = row_offsets.astype(jnp.int32)

  splits = config.k_splits

  def call(operand, tokens_major):
    columns = operand.shape[0] if tokens_major else operand.shape[1]
    out_shape = (columns, m) if tokens_major else (m, columns)
    # Split K: each split's float32 partial sums, added here.
    result = (jax.ShapeDtypeStruct(out_shape, x.dtype) if splits == 1
              else jax.ShapeDtypeStruct((splits,) + out_shape, jnp.float32))
    out = jax.ffi.ffi_call(TILED_TARGET, result, vmap_method="sequential")(
        data, bitmaps, offsets, operand, m=np.int64(m), k=np.int64(k),
        tokens_major=np.int64(tokens_major), m_tiles=np.int64(config.m_tiles),
        warps=np.int64(config.warps), stages=np.int64(config.stages),
        capacity=np.int64(config.capacity), k_splits=np.int64(splits),
        x_sharing=np.int64(config.x_sharing))
    return out if splits == 1 else out.sum(axis=0).astype(x.dtype)

  return staged_product(x, call)


def mean_tile_fill(data: jax.Array, bitmaps: jax.Array) -> float:
  """The values a tile of a Tiled matrix (its ``data`` [nse], ``bitmaps`` [Mt, Kt, tm, words])
  holds on average, from the shapes alone (so under jit too; padding past the last value
  counts), at most 1024. Raises ValueError unless data is 1-D and bitmaps 4-D."""
  if jnp.ndim(data) != 1 or jnp.ndim(bitmaps) != 4:
    raise ValueError(f"data must be [nse] and bitmaps [Mt, Kt, tm, words], got shapes "
                     f"{jnp.shape(data)} and {jnp.shape(bitmaps)}")
  tiles = max(bitmaps.shape[0] * bitmaps.shape[1], 1)
  return min(data.shape[0] / tiles, TILE_VALUES)


def tile_capacity(mean_values: float) -> int:
  """A slot capacity for tiles holding ``mean_values`` values on average (0..1024): the mean
  plus six standard deviations of a tile whose 1024 entries are kept independently, plus 8,
  rounded up to 8. A uniformly pruned matrix then overflows a slot about once in 10^9 tiles;
  a tile that does is read from global memory. Raises ValueError outside 0..1024."""
  if not 0 <= mean_values <= TILE_VALUES:
    raise ValueError(f"mean_values must be in 0..{TILE_VALUES}, got {mean_values}")
  p = mean_values / TILE_VALUES
  bound = mean_values + 6.0 * math.sqrt(TILE_VALUES * p * (1.0 - p)) + 8.0
  return int(min(TILE_VALUES, 8 * math.ceil(bound / 8)))


# Both kernels stage x through shared memory in rows of 16 bytes (8 values).
STAGED_COLUMNS = 8


def staged_tokens_major(k: int, n: int) -> bool:
  """Whether ``staged_product`` hands a kernel x [K, N] tokens-major (as [N, K]): one column
  and K a multiple of ``STAGED_COLUMNS``."""
  return n == 1 and k % STAGED_COLUMNS == 0


def staged_product(x: jax.Array, call) -> jax.Array:
  """A kernel's product with x [K, N], x laid out so that the kernel stages it: one column as
  a row (tokens-major, no copy) when K is a multiple of ``STAGED_COLUMNS``; other N not a
  multiple of it padded to one; else as it is. ``call(operand, tokens_major)`` launches the
  kernel ([M, N'] out, or [N, M] tokens-major). Returns [M, N]."""
  k, n = x.shape
  if staged_tokens_major(k, n):
    return call(x.reshape(1, k), True).reshape(-1, 1)
  if n % STAGED_COLUMNS:
    padded = -(-n // STAGED_COLUMNS) * STAGED_COLUMNS
    return call(jnp.pad(x, ((0, 0), (0, padded - n))), False)[:, :n]
  return call(x, False)


if __name__ == "__main__":
  if sys.argv[1:] == ["build"]:
    print(build(verbose=True))
  else:
    sys.exit("usage: python -m jsparse._gpu.sparse_mma build")
