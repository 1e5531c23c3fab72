"""Unstructured ``jsparse.Tiled`` weights (16x64 tiles) times 1-4 columns on the CUDA cores, in
a CUDA custom call (``csrc/cuda/tiled_gemv_ffi.cu``): LLM decoding at batch 1-4.

The tensor-core kernel (``sparse_mma.tiled_matmul``) expands every element of a tile into mma
fragments whatever its density, and at one column it is bound by issuing those instructions
(H100: 363 warp instructions a tile, 79% of issue slots busy). Here a lane walks one bitmap
word's set bits and does one FMA a stored value a column, so the work follows the values.

- ``gemv(data, bitmaps, row_offsets, x, shape=...)``: A [M, K] @ x [K, N] -> [M, N] for
  N = 1..``MAX_N``, bfloat16/float16 (A's and x's dtype alike), float32 accumulation.
- ``TiledGemvConfig``: the launch (row tiles and warps a block, K splits, x's source).

GPU-only (built for sm_90): ``available()`` says whether the library loads (building it with
nvcc if needed); ``python -m jsparse._gpu.tiled_gemv build`` builds it.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import sys
from typing import Any

import ctypes
import jax
import jax.numpy as jnp
import numpy as np

from jsparse._gpu import nvcc, sparse_mma

SOURCE = nvcc.SOURCE_DIR / "tiled_gemv_ffi.cu"
TARGET = "jsparse_tiled_gemv"
MAX_N = 4
# Warps a block: up to 32 at one column, 16 at 2-4 (their registers).
MAX_WARPS = 32
MAX_WARPS_MULTI = 16
# Shared memory a block may take on sm_90, less the kernel's static partial sums.
MAX_SHARED_BYTES = sparse_mma.MAX_SHARED_BYTES - MAX_WARPS_MULTI * 16 * 4 * 4
# ``jsparse.spmm`` on a Tiled matrix (16x64 tiles, bf16/f16) on a CUDA GPU sends products of n
# columns here where its tiles hold at most ``ROUTE_MAX_FILL[n]`` values on average, the rest
# to the tensor-core kernel (``sparse_mma.tiled_matmul``; jsparse._gpu.structured). H100, bf16,
# kernel time, this kernel against the tensor-core one:
# - one column, 4096x14336 / 14336x4096 (experiments/results/h100-2026-11-27-tiled-gemv/): at
#   70% sparsity (307 values a tile) 30.0 / 25.7 us against 30.3 / 31.2, at 50% 42.0 / 34.4
#   against 34.0 / 35.3;
# - two columns on the wide 4096x14336 (experiments/results/h100-2026-11-27-tiled-gemv-two-
#   columns/): at 75% (256 values) 32.4 against 34.8 us, at 70% 35.3 against 34.4;
# - four at 90%: 33.6 / 23.7 against 31.6 / 32.6 (not routed).
ROUTE_MAX_FILL = {1: 330, 2: 260}
# At two columns on a weight of more than ``MAX_BLOCKS`` row tiles (whose launch groups row
# tiles, four a block at 14336 rows), up to this fill. H100, 14336x4096, two columns: at 60%
# (410 values) 35.0 us against 37.0, at 65% 32.6 against 36.1, at 70% 30.3 against 35.5
# (experiments/results/h100-2026-11-27-tiled-gemv-two-columns/); at 50% 40.1 against 39.9
# (.../h100-2026-11-27-tiled-gemv-variants/walks/).
ROUTE_MAX_FILL_GROUPED = {2: 410}
# Where the kernel reads x from (its ``x_source`` attribute).
X_SOURCES = {"float32": 0, "16-bit": 1, "global": 2}


@dataclasses.dataclass(frozen=True)
class TiledGemvConfig:
  """A launch: a block of ``warps`` warps (1-32 at one column, 1-16 at more) computes
  ``m_tiles`` row tiles of 16 (a divisor of ``warps``; ``warps // m_tiles`` warps take each row
  tile's K tiles in turn) for one of ``k_splits`` splits of K (1-64; more than 1 writes float32
  partial sums that ``gemv`` adds);
  ``x_source``: where the kernel reads x from (``X_SOURCES``): staged in shared memory as
  float32, or in x's own 16-bit dtype (half the memory, so more blocks an SM where x's staging
  bounds them; one more conversion a value read), or (one column only) from global memory
  through the L1 cache, unstaged.

  Tried on the H100 and removed (experiments/results/h100-2026-11-27-tiled-gemv-variants/):
  prefetching a warp's next tile's values into L1 or L2 (from row starts loaded a tile ahead,
  and two ahead); two value pairs a loop trip; word starts from one offset a tile plus a warp
  scan of bit counts; a warp's values copied into
  shared memory by cp.async two tiles ahead of its walk. Each was slower at 70%."""
  m_tiles: int = 1
  warps: int = 16
  k_splits: int = 1
  x_source: str = "float32"

  def __post_init__(self):
    if not 1 <= self.warps <= MAX_WARPS:
      raise ValueError(f"warps must be 1..{MAX_WARPS}, got {self.warps}")
    if self.m_tiles < 1 or self.warps % self.m_tiles:
      raise ValueError(f"m_tiles must divide warps, got m_tiles = {self.m_tiles}, "
                       f"warps = {self.warps}")
    if not 1 <= self.k_splits <= 64:
      raise ValueError(f"k_splits must be 1..64, got {self.k_splits}")
    if self.x_source not in X_SOURCES:
      raise ValueError(f"x_source must be one of {sorted(X_SOURCES)}, got {self.x_source!r}")

  def shared_bytes(self, n: int, k: int) -> int:
    """Dynamic shared memory a block takes for x [k, n]: its split's K tiles of x as float32
    or 16-bit (``x_source``; none when read from global memory), 1, 2 or 4 values a column,
    64 bytes of padding after a 32-column word that fills a multiple of 128 bytes (as the
    kernel's XStage lays them out). Raises ValueError for n outside 1..``MAX_N`` or k < 1."""
    if not 1 <= n <= MAX_N:
      raise ValueError(f"n must be 1..{MAX_N} (the gemv kernel's columns), got {n}")
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    if self.x_source == "global":
      return 0
    width = 1 if n == 1 else 2 if n == 2 else 4
    k_tiles = -(-k // 64)
    word = 32 * width * (2 if self.x_source == "16-bit" else 4)
    return -(-k_tiles // self.k_splits) * 2 * (word + (64 if word % 128 == 0 else 0))

  def fits(self, n: int, k: int) -> bool:
    """Whether the kernel takes this launch for x [k, n]: x's staging fits in shared memory,
    and x is read from global memory and more than ``MAX_WARPS_MULTI`` warps a block run
    only at one column."""
    return (self.shared_bytes(n, k) <= MAX_SHARED_BYTES
            and (n == 1 or (self.x_source != "global" and self.warps <= MAX_WARPS_MULTI)))


def library_path() -> pathlib.Path:
  return nvcc.library_path(SOURCE, "jsparse_tiled_gemv")


def build(verbose: bool = False) -> pathlib.Path:
  """Compiles the library with nvcc (sm_90); returns its path."""
  return nvcc.build(SOURCE, library_path(), verbose=verbose)


@functools.lru_cache(maxsize=None)
def load() -> ctypes.CDLL:
  """The library (built first if missing), its handler registered as a jax.ffi target."""
  return nvcc.load(library_path(), build, {TARGET: "JsparseTiledGemv"})


@functools.lru_cache(maxsize=None)
def available() -> bool | str:
  """True when a CUDA device is visible and the library loads (building it if needed), else
  why not; decided once a process."""
  return nvcc.availability(load)


def applies(shape: tuple[int, int], tile_shape: tuple[int, int], dtype: Any, x_dtype: Any,
            n: int) -> bool:
  """Whether ``gemv`` takes a product of a Tiled [M, K] matrix by n columns: 16x64 tiles,
  bfloat16/float16 values and x alike, 1 <= n <= ``MAX_N``, the library available."""
  return (sparse_mma.tiled_operands_match(tile_shape, dtype, x_dtype) and 1 <= n <= MAX_N
          and available() is True)


# An SM's shared memory (sm_90), and what a one-column block of the kernel takes besides x's
# staging (its partial sums, float32 [MAX_WARPS, 16], and the driver's 1 KB reserve), for
# counting the blocks that fit an SM.
SM_SHARED_BYTES = 228 * 1024
STATIC_SHARED_BYTES = MAX_WARPS * 16 * 4 + 1024
# Blocks of one launch from which row tiles are grouped into fewer, bigger blocks.
MAX_BLOCKS = 264
# Shared memory a block's x staging may take as float32 and still leave room for four blocks an
# SM (the register cap's occupancy at one column).
FLOAT_X_MAX_BYTES = sparse_mma.MAX_SHARED_BYTES // 4 - 1024


def routes(n: int, tile_fill: float, m: int | None = None) -> bool:
  """Whether ``jsparse.spmm`` sends a product of n columns by a Tiled matrix of m rows (None:
  not known) whose 16x64 tiles hold ``tile_fill`` values on average here: ``ROUTE_MAX_FILL``,
  or ``ROUTE_MAX_FILL_GROUPED`` where m has more than ``MAX_BLOCKS`` row tiles."""
  limit = ROUTE_MAX_FILL.get(n, -1)
  if m is not None and -(-m // 16) > MAX_BLOCKS:
    limit = max(limit, ROUTE_MAX_FILL_GROUPED.get(n, -1))
  return tile_fill <= limit


def default_config(n: int, m: int, k: int) -> TiledGemvConfig:
  """The launch for x [k, n] and an [m, k] weight.
  - One column: a row tile a block, x staged 16-bit; 32 warps a block where there are at most
    ``2 * GPU_SMS`` row tiles (two blocks an SM; ``sparse_mma.GPU_SMS``), else 16, or 8 where
    that makes the launch one wave (eight blocks an SM, their x staging fitting); K split
    (float32 partial sums, then their sum; up to four ways, at least 16 K tiles a split) where
    fewer than ``GPU_SMS`` row tiles would leave SMs without a block. H100, 70% sparsity
    (experiments/results/h100-2026-11-27-tiled-gemv/): 4096x14336 23.8 us with 32 warps, 25.2
    with 16 and K split in two, 26.9 with 16; 14336x4096 24.6 us with 16 warps, 30.6 with 32
    and 26.7 with 32 on two row tiles; 14336x4096 with 8 warps against 16 (896 blocks in one
    wave against 1.7), 28.0 / 24.3 / 20.8 / 16.6 us against 28.1 / 24.9 / 21.3 / 17.4 at 60 /
    70 / 80 / 90% (experiments/results/h100-2026-11-27-tiled-gemv-variants/prefetch/).
  - 2-4 columns: 16 warps a block, the fewest row tiles a block (a power of two) that keep the
    launch at ``MAX_BLOCKS`` blocks (4096 rows: 1, 256 blocks; 14336 rows: 4, 224 blocks); x
    staged float32 where that leaves room for four blocks an SM, else 16-bit.
  K split further wherever x's staging needs it to fit in shared memory."""
  if not 1 <= n <= MAX_N:
    raise ValueError(f"n must be 1..{MAX_N} (the gemv kernel's columns), got {n}")
  row_tiles = -(-m // 16)
  sms = sparse_mma.GPU_SMS
  if n == 1:
    config = TiledGemvConfig(m_tiles=1, warps=MAX_WARPS if row_tiles <= 2 * sms else 16,
                             x_source="16-bit")
    eight = dataclasses.replace(config, warps=8)
    if (config.warps == 16 and row_tiles > 4 * sms and row_tiles <= 8 * sms
        and 8 * (eight.shared_bytes(1, k) + STATIC_SHARED_BYTES) <= SM_SHARED_BYTES):
      config = eight
    if row_tiles < sms:
      splits = max(1, min(4, 2 * sms // row_tiles, -(-k // 64) // 16))
      config = dataclasses.replace(config, k_splits=splits)
  else:
    m_tiles = 1
    while m_tiles < MAX_WARPS_MULTI and -(-row_tiles // m_tiles) > MAX_BLOCKS:
      m_tiles *= 2
    config = TiledGemvConfig(m_tiles=m_tiles, warps=MAX_WARPS_MULTI)
    if config.shared_bytes(n, k) > FLOAT_X_MAX_BYTES:
      config = dataclasses.replace(config, x_source="16-bit")
  while not config.fits(n, k):
    config = dataclasses.replace(config, k_splits=config.k_splits + 1)
  return config


def gemv(data: jax.Array, bitmaps: jax.Array, row_offsets: jax.Array, x: jax.Array, *,
         shape: tuple[int, int], config: TiledGemvConfig | None = None) -> jax.Array:
  """A @ x for a ``jsparse.Tiled`` A [M, K] with 16x64 tiles (its ``data``, ``bitmaps``,
  ``row_offsets``) and x [K, N] of A's dtype (bfloat16/float16), 1 <= N <= ``MAX_N``:
  [M, N]. ``config``: None for ``default_config(N, M, K)``. Raises ValueError/TypeError naming
  what is wrong."""
  m, k = shape
  n = sparse_mma.check_tiled_product(data, bitmaps, row_offsets, x, shape, MAX_N, "gemv")
  config = config or default_config(n, m, k)
  if not config.fits(n, k):
    if n != 1 and (config.x_source == "global" or config.warps > MAX_WARPS_MULTI):
      raise ValueError(f"config {config}: x read from global memory, and more than "
                       f"{MAX_WARPS_MULTI} warps a block, take one column only, got {n}")
    raise ValueError(f"config {config} stages {config.shared_bytes(n, k)} bytes of x at "
                     f"K = {k}, more than a block may ({MAX_SHARED_BYTES}): raise k_splits")
  load()
  splits = config.k_splits
  result = (jax.ShapeDtypeStruct((m, n), x.dtype) if splits == 1
            else jax.ShapeDtypeStruct((splits, m, n), jnp.float32))
  out = jax.ffi.ffi_call(TARGET, result, vmap_method="sequential")(
      data, bitmaps, row_offsets.astype(jnp.int32), x, m=np.int64(m), k=np.int64(k),
      m_tiles=np.int64(config.m_tiles), warps=np.int64(config.warps),
      k_splits=np.int64(splits), x_source=np.int64(X_SOURCES[config.x_source]))
  return out if splits == 1 else out.sum(axis=0).astype(x.dtype)


if __name__ == "__main__":
  if sys.argv[1:] == ["build"]:
    print(build(verbose=True))
  else:
    sys.exit("usage: python -m jsparse._gpu.tiled_gemv build")
