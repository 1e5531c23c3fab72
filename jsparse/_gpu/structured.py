"""Tensor-core kernels of the structured formats (BSR, N:M, tiled) as ``pallas`` lowerings.

``A @ B`` (SpMM) and ``A @ x`` (SpMV, as SpMM with one column) for A in BSR, NM or Tiled, in
float16, bfloat16 or float32; ``A.T @ B`` and SDDMM stay on the reference lowering (``"auto"``
falls back, a forced ``impl="pallas"`` says why). Launch configurations are chosen from the
number of columns N of B (decoding: N <= 32, split-K; prefill: larger).

BSR SpMM has two kernels behind its one lowering; ``choose_bsr_kernel`` (pure Python, run when a
call is lowered) picks one per call:

- ``"mosaic"``, ``pallas_kernels.bsr_spmm_mgpu`` (Mosaic GPU: TMA and wgmma; Hopper only), when
  every local CUDA device is sm_90, the call is compiled (not interpret mode) and its
  ``supports()`` accepts the call with its ``default_config``: float16/bfloat16 values and B,
  ``bm`` a multiple of 64 up to 256, ``bk`` a multiple of 16 up to 256, N a multiple of the
  config's ``tile_n`` (64, or 128 where N is a multiple of 128 and the launch still fills the
  SMs), and at least two pipeline slots within 227 KiB of shared memory (256x256 blocks never
  fit; 128x256 blocks only at ``tile_n`` 64). Either kernel runs only where the Triton kernel's
  ``supports`` holds (block sides powers of two), so bm is 64, 128 or 256. On an H100 it was
  faster than the Triton kernel in 30 of 32 measured cases (up to 3x at N = 128, 0.97-0.99x at
  block density 0.5, N = 1024 on 14336x4096);
- ``"triton"``, ``pallas_kernels.bsr_spmm`` (Triton), for everything else: float32, blocks of
  fewer than 64 rows, N not a multiple of 64 (SpMV, decoding), GPUs other than Hopper, interpret
  mode.

N:M and tiled SpMM with more than 32 columns of X (prefill, ``expands_to_dense``) expand W once
to a dense array (``nm_matmul.expand_fn``, ``tiled_spmm.expand_fn``) and multiply it by XLA's dot;
decoding (N <= 32) runs the fused kernels below. 2:4-like N:M with 16-bit values keeps the fused
joined-tile kernel up to ``JOINED_MAX_N`` = 128 columns (``nm_expands``). Each path has its own
support check: prefill takes any n:m (``expand_fn`` is plain jax.numpy) and tiles with
power-of-two sides; decoding needs the fused kernels' Triton constraints for their launch.

Tiled SpMM with 16x64 bf16/f16 tiles and at most 32 columns on a CUDA GPU runs the CUDA kernels:
``tiled_gemv.gemv`` (CUDA cores) at 1-2 columns of sparse enough tiles (``tiled_gemv.routes``),
else ``sparse_mma.tiled_matmul`` (tensor cores). Elsewhere it runs ``pallas_kernels.tiled_spmm``
(tiles expanded from their bitmaps, then a ``dot``, or float32 FMAs for one column of X on wide
weights; ``tiled_config``).
``pallas_kernels.tiled_gather`` (each stored value times X's row at its column, no expansion)
was the default for one column of X where K > M until 2026-11-26; ``tiled_gather_config`` keeps
its launch for probes.

As for attention (``jsparse._gpu.attention``), the device check reads ``cuda_capability()`` when
the call is lowered (lowering for CUDA on a host without one picks Triton), and the environment
variable ``JSPARSE_BSR_KERNEL`` (``auto``, the default; ``triton``; ``mosaic``) overrides the
choice; ``mosaic`` skips the device and interpret checks but still needs ``supports()``, and
says why not. In interpret mode ``mosaic`` runs the Mosaic GPU interpreter when ``_spmm_bsr`` is
called directly; through ``jsparse.spmm`` its ordered callbacks find no effect token in the
primitive's lowering and fail. The choice is fixed once a shape is compiled: set it before the
first call.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax.numpy as jnp

from jsparse._gpu import cuda_capability, kernel_override, pick_kernel, register_pallas
from jsparse.formats.layout import SparseLayout
from pallas_kernels import _common, bsr_spmm, dense_product, nm_matmul, tiled_gather, tiled_spmm

KERNEL_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32))
BSR_KERNEL_ENV_VAR = "JSPARSE_BSR_KERNEL"


def _block_n(num_n: int, largest: int) -> int:
  """Columns of B per program: the next power of two of N, between 16 (tl.dot) and ``largest``."""
  return max(16, min(largest, 1 << max(num_n - 1, 0).bit_length()))


def bsr_config(layout: SparseLayout, num_n: int) -> bsr_spmm.BsrSpmmConfig:
  # Narrower column tiles until the launch has BSR_PROGRAMS programs: at N = 128 one 128-wide
  # tile per 32-row block row would leave 4096-row matrices at 128 programs for 132 SMs.
  block_n = _block_n(num_n, 128)
  row_tiles = -(-layout.shape[0] // layout.block_shape[0])
  while block_n > 16 and row_tiles * -(-num_n // block_n) < BSR_PROGRAMS:
    block_n //= 2
  return bsr_spmm.BsrSpmmConfig(block_n=block_n)


# Decoding (N <= 32) is memory-bound: enough programs to keep every SM's loads in flight (the
# H100 has 132 SMs), but each K slice at least this many steps long, so split-K's float32 partial
# sums stay small next to W.
DECODE_PROGRAMS = 1024
BSR_PROGRAMS = 512
MIN_STEPS_PER_SPLIT = 4


def decode_splits(row_tiles: int, num_steps: int) -> int:
  """K slices: the least power of two giving ``DECODE_PROGRAMS`` programs, each slice at least
  ``MIN_STEPS_PER_SPLIT`` steps."""
  splits = 1
  while row_tiles * splits < DECODE_PROGRAMS and num_steps // (2 * splits) >= MIN_STEPS_PER_SPLIT:
    splits *= 2
  return splits


# Gathered decoding (``gather_column``): block_m * kept values a step * block_n products a step.
GATHER_PRODUCTS = 8192
GATHER_MAX_N = 16
# The joined-tile launch (2:4-like n = 2 with 16-bit values) serves 2 .. JOINED_MAX_N columns,
# with a column tile of 16, 32 or 64 (``joined_block_n``), instead of the other fused launches
# and of W's expansion for N > 32 (``nm_expands``). H100, 2:4 bf16, kernel time
# (experiments/results/h100-2026-11-27-nm-skinny/), us at N = 32 / 64 / 128 on 14336x4096:
# column tile 32: 42.9 (dense 49.7; the launch used before, 95.5); tile 64: 57.2 (dense 50.3,
# expansion 124.5), 114.8 (dense 47.4, expansion 123.6); 4096x14336 alike, 4096x4096 0.66 / 0.79
# / 0.49x dense against the old 0.31 / 0.45 / 0.48x.
JOINED_MAX_N = 128
# Largest block_k of the per-position-dot decoding launch (m <= 16: 256).
MAX_POSITION_BLOCK_K = 256
# K step of the joined-tile decoding launch (n = 2, 16-bit values, m <= 8).
JOINED_BLOCK_K = 128


def joined_applies(layout: SparseLayout, num_n: int, dtype: Any) -> bool:
  """Whether ``nm_config`` gives N columns of X the joined-tile launch: 2 <= N <=
  ``JOINED_MAX_N``, n = 2 with 16-bit values (paired), m a power of two with
  ``JOINED_BLOCK_K / m >= 16``."""
  n, m = layout.nm
  return (2 <= num_n <= JOINED_MAX_N and n == 2 and jnp.dtype(dtype).itemsize == 2
          and _common.is_power_of_two(m) and JOINED_BLOCK_K // m >= 16)


def joined_block_n(num_n: int) -> int:
  """The joined-tile launch's column tile for N columns: 16, 32 or 64."""
  return 16 if num_n <= 16 else 32 if num_n <= 32 else 64


def nm_expands(layout: SparseLayout, num_n: int, dtype: Any) -> bool:
  """Whether an N:M ``A @ B`` of ``num_n`` columns expands W to dense (``expands_to_dense``),
  unless the joined-tile launch serves it."""
  return expands_to_dense(num_n) and not joined_applies(layout, num_n, dtype)


def nm_config(layout: SparseLayout, num_n: int,
              dtype: Any = jnp.bfloat16) -> nm_matmul.NmMatmulConfig:
  """The N:M launch for N columns of X (values of ``dtype``): gathered decoding (N = 1, n a
  power of two), the joined tile (``joined_applies``: N = 2 .. ``JOINED_MAX_N``, n = 2 and
  16-bit values), per-position tiles (other N <= 16, m dots; and prefill, N > 32, m dots, with
  paired values for n = 2 and 16-bit values), the expanding dot otherwise."""
  (num_rows, num_k), (n, m) = layout.shape, layout.nm
  position_block_k = max(64, 16 * m)  # per-position dots need block_k / m >= 16
  paired = n == 2 and jnp.dtype(dtype).itemsize == 2  # a group's values as one uint32 load
  if joined_applies(layout, num_n, dtype):
    # Paired values, the per-position tiles joined into the dense [32, 128] tile, one dot a
    # step (experiments/results/h100-h200-2026-11-26-nm-decode). 2:4 bf16 N = 8 / 16 on
    # 4096x14336, 14336x4096, 4096x4096, H200: 50.7 / 45.4, 50.1 / 48.4, 20.4 / 18.3 us
    # (round 4); the 64x64 per-position dots below took 99.8 / 101.0, 104.1 / 102.0, 38.2 /
    # 50.5 us in round 2 (dense 39-50 and 17-18 us in both). Wider N: JOINED_MAX_N.
    block_m = 32
    splits = decode_splits(-(-num_rows // block_m), -(-num_k // JOINED_BLOCK_K))
    return nm_matmul.NmMatmulConfig(block_m=block_m, block_k=JOINED_BLOCK_K,
                                    block_n=joined_block_n(num_n), num_splits=splits,
                                    position_dots=True, prefetch=True, paired_values=True,
                                    joined_tile=True)
  if num_n <= 32:
    if num_n == 1 and _common.is_power_of_two(n):
      # No expansion: each kept value times X's entry at its column (H100, 2026-11-25, 2:4 bf16
      # N = 1 with packed positions: 12.3 / 45.2 / 42.8 us on 4096x4096 / 4096x14336 /
      # 14336x4096, dense 21.3 / 65.8 / 69.7 us).
      block_n, block_k = 1, max(128, m)
      block_m = max(16, min(64, GATHER_PRODUCTS // (block_k // m * n * block_n)))
      block_m = 1 << (block_m.bit_length() - 1)
      splits = decode_splits(-(-num_rows // block_m), -(-num_k // block_k))
      return nm_matmul.NmMatmulConfig(block_m=block_m, block_k=block_k, block_n=block_n,
                                      num_splits=splits, gather_column=True)
    if 2 <= num_n <= GATHER_MAX_N and position_block_k <= MAX_POSITION_BLOCK_K:
      # Per-position dots on 64x64 tiles, X padded to 16 columns: 2:4 bf16 N = 8 / 16 on
      # 4096x14336 105 / 105 us, on 4096x4096 (N = 16) 40.1 us, where the gather with several
      # columns a program took 241 / 589 and 195 us (dense 52-72 and 20.6 us; same H100 run).
      block_m = 64
      splits = decode_splits(-(-num_rows // block_m), -(-num_k // position_block_k))
      return nm_matmul.NmMatmulConfig(block_m=block_m, block_k=position_block_k, block_n=16,
                                      num_splits=splits, position_dots=True, prefetch=True)
    block_m, block_k = 64, 128
    splits = decode_splits(-(-num_rows // block_m), -(-num_k // block_k))
    block_n = 1 if num_n == 1 else _block_n(num_n, 32)
    return nm_matmul.NmMatmulConfig(block_m=block_m, block_k=block_k, block_n=block_n,
                                    num_splits=splits)
  # Prefill: m dots of [128, 16] x [16, 256] a step, no reshape of the expanded tile. H100,
  # 4096x4096 2:4 bf16 N = 1024: 146.8 us with block_n 256, 220.0 with 128, 345.3 for the
  # reshaped expansion (dense 68.8 us). Prefetch: Triton pipelines X's loads (dot operands), not
  # W's, whose values go through the expansion first (394.8 us without it).
  if paired:
    # Paired values on 64-row tiles and four warps. H100 2:4 bf16
    # (experiments/results/h100-h200-2026-11-26-nm-decode/prefill2-h100): 4096x4096 @ 1024 /
    # 4096, 14336x4096 and 4096x14336 @ 1024: 99.7 / 331.4, 316.8, 303.2 us against 126.8 /
    # 450.9, 463.3, 431.0 for the launch below (dense 53.2 / 210.9, 212.0, 179.5). Joining the
    # per-position tiles into one dot did not pay here (prefill round 1).
    return nm_matmul.NmMatmulConfig(block_m=64, block_k=position_block_k, block_n=256,
                                    position_dots=True, prefetch=True, paired_values=True,
                                    num_warps=4, num_stages=3)
  return nm_matmul.NmMatmulConfig(block_m=128, block_k=position_block_k, block_n=256,
                                  position_dots=True, prefetch=True, num_warps=8, num_stages=3)


def tiled_config(layout: SparseLayout, num_n: int) -> tiled_spmm.TiledSpmmConfig:
  if num_n > 32:
    # Prefill: each program expands its W tiles once for block_n columns, so wide column tiles
    # on eight warps. H100 bf16, 70% sparsity (experiments/results/h100-2026-11-25-tiled-popc/
    # probe_prefill.md), against 64 columns on four warps: MiniLM's 1536x384 / 384x1536 @ 4096
    # tokens 65 / 56 us (91 / 83), 4096x4096 @ 1024 336 (402); 1536x384 @ 128 with 128 columns
    # 10.3 us (11.7).
    block_n = _block_n(num_n, 256)
    return tiled_spmm.TiledSpmmConfig(block_n=block_n, num_warps=8,
                                      num_stages=2 if block_n == 256 else 3)
  (num_rows, num_k), (tm, tk) = layout.shape, layout.block_shape
  splits = decode_splits(-(-num_rows // tm), -(-num_k // tk))
  # Two warps: 8 of a [16, 64] tile's elements a thread on four warps, 16 on two; H100 bf16 at
  # 70% sparsity, N = 16: 4096x14336 141 us (four warps 151), 14336x4096 131 (149); eight warps
  # 196 (experiments/results/h100-2026-11-25-tiled-popc/).
  # Wide weights (K > M: long tile rows, few of them) take the hand-pipelined loop with absent
  # elements' lanes masked off; tall ones the plain loop, absent elements read beside the
  # present ones. H100 bf16, 70% sparsity, [16, 64] tiles, us, the launch of the time -> this
  # (experiments/results/h100-2026-11-26-tiled-pipeline/, round 2): 4096x14336 N = 16 / 32
  # 146.3 / 146.1 -> 99.3 / 110.1; 14336x4096 N = 1 / 16 / 32 100.4 / 101.2 / 104.8 -> 93.2 /
  # 92.4 / 106.4 (50% N = 16: 135.9 -> 96.9). Pipelined with "neighbour" reads took 162-192 us
  # at N = 32 on the wide weight (sweep run 1 there). The kernel stays bound by its L1 traffic:
  # a gathered load and a shared-memory store (the dot operand's layout change) per element.
  wide = num_k > num_rows
  if wide and num_n == 1:
    # No dot (so no layout change a step): FMAs into per-element sums (fma/ there: 4096x14336
    # at sparsity 0.5 / 0.7 / 0.9 83.1 / 79.7 / 66.1 us; the dot launch 101.1 / 99.1 / 94.3).
    # On 14336x4096 the same launch was mixed (0.7: 90.3 against 100.9; others not measured).
    return tiled_spmm.TiledSpmmConfig(block_n=1, num_splits=splits, num_warps=2,
                                      absent_reads="masked", pipelined=True, fma_products=True)
  return tiled_spmm.TiledSpmmConfig(block_n=_block_n(num_n, 32), num_splits=splits, num_warps=2,
                                    absent_reads="masked" if wide else "neighbour",
                                    pipelined=wide)


def bsr_kernel_choice() -> str:
  """``JSPARSE_BSR_KERNEL`` (``"auto"`` when unset or empty), checked."""
  return kernel_override(BSR_KERNEL_ENV_VAR)


def _bsr_mgpu():
  # Imported on first use: Mosaic GPU's Pallas module adds ~0.5 s to ``import jsparse``.
  from pallas_kernels import bsr_spmm_mgpu
  return bsr_spmm_mgpu


def choose_bsr_kernel(avals: Sequence[Any], layout: SparseLayout, *, interpret: bool,
                      capability: tuple[int, int] | None,
                      choice: str = "auto") -> tuple[str, str]:
  """Which kernel lowers a BSR SpMM the Triton kernel supports: ``("mosaic" | "triton", why)``.

  Args:
    avals: data [nse, bm, bk], col_indices [nse], row_offsets [M / bm + 1], dense [K, N]
      (arrays, tracers or avals: shapes and dtypes only).
    layout: the matrix's ``SparseLayout`` (``shape``).
    interpret: whether the kernel runs in interpret mode (CPU).
    capability: ``cuda_capability()`` of the devices it will run on (ignored when interpreting).
    choice: ``bsr_kernel_choice()``.

  Raises:
    ValueError: ``choice="mosaic"`` and the Mosaic GPU kernel's ``supports()`` refuses the call.
  """
  return pick_kernel(
      BSR_KERNEL_ENV_VAR, choice, interpret=interpret, capability=capability,
      mosaic_supports=lambda: _bsr_mgpu().supports(*avals, shape=tuple(layout.shape)),
      mosaic_reason="Hopper, within the Mosaic GPU kernel's restrictions")


def _spmm_bsr(data, col_indices, row_offsets, dense, *, interpret, layout, **unused):
  operands = (data, col_indices, row_offsets, dense)
  kernel, _ = choose_bsr_kernel(operands, layout, interpret=interpret,
                                capability=None if interpret else cuda_capability(),
                                choice=bsr_kernel_choice())
  if kernel == "mosaic":
    return _bsr_mgpu().kernel_fn(*operands, shape=layout.shape, interpret=interpret)
  return bsr_spmm.kernel_fn(*operands, shape=layout.shape,
                            config=bsr_config(layout, dense.shape[1]), interpret=interpret)


# Prefill through a dense W: from these many columns of X up, W is expanded to dense once a call
# (``nm_matmul.expand_fn`` / ``tiled_spmm.expand_fn``) and multiplied by XLA's dense product,
# instead of the fused kernels, which expand W on the CUDA cores again for every column tile of X
# beside the tensor cores. H100 bf16 (experiments/results/h100-2026-11-26-prefill-expand/round1),
# us, fused -> expanded (dense): 2:4 4096x4096 @ 1024 / 4096 96.8 / 344.9 -> 82.2 / 239.1 (66.0 /
# 209.5), 14336x4096 @ 1024 322.3 -> 272.9 (216.4), 4096x14336 @ 1024 295.7 -> 233.1 (240.1);
# tiled 70% 384x1536 / 384x384 @ 4096 53.3 / 17.9 -> 19.7 / 9.2 (17.3 / 7.9). From N = 64 up
# (crossover/) the expansion won or tied on every shape: every prefill launch (N > 32) expands.
EXPAND_MIN_N = 33


def expands_to_dense(num_n: int) -> bool:
  """Whether an N:M or tiled ``A @ B`` of ``num_n`` columns takes the expanded path
  (``EXPAND_MIN_N``)."""
  return num_n >= EXPAND_MIN_N


def _spmm_nm(data, indices, packed_indices, dense, *, interpret, layout, **unused):
  if nm_expands(layout, dense.shape[1], data.dtype):
    packed = packed_indices.shape[-1] > 0
    weights = nm_matmul.expand_fn(data, packed_indices if packed else indices,
                                  shape=layout.shape, nm=layout.nm, indices_packed=packed)
    return dense_product.xla_product(weights, dense)
  # The packed positions (built with the matrix) when the launch reads whole words of them.
  config = nm_config(layout, dense.shape[1], data.dtype)
  packed = packed_indices.shape[-1] > 0 and nm_matmul.packed_fits(layout.nm, config)
  return nm_matmul.kernel_fn(data, packed_indices if packed else indices, dense,
                             shape=layout.shape, nm=layout.nm, config=config,
                             indices_packed=packed, interpret=interpret)


def tiled_gather_config(layout: SparseLayout, num_n: int) -> tiled_gather.TiledGatherConfig | None:
  """The gather kernel's launch (no expansion) for one column of X and K > M, else None. Not the
  default since 2026-11-26: the expanding kernel with FMA products (``tiled_config``) beat it on
  4096x14336 at N = 1 (H100 bf16, experiments/results/h100-2026-11-26-tiled-pipeline/fma/:
  sparsity 0.5 / 0.7 / 0.9 83.1 / 79.7 / 66.1 us against 113.9 / 76.4 / 82.2). Before that, two
  tile rows a program against the expanding launch of the time
  (experiments/results/h100-2026-11-25-tiled-popc/probe_gather.md): 4096x14336 at sparsity 0.3
  / 0.5 / 0.7 / 0.9: 162 / 146 / 83 / 82 us (171 / 160 / 132 / 153); 14336x4096: 179 / 164 /
  91 / 131 (164 / 151 / 115 / 110); at N = 8 / 16 the gathered [rows, chunk, N] rows of X make
  it 4-20x slower."""
  (num_rows, num_k), (tm, tk) = layout.shape, layout.block_shape
  if num_n != 1 or num_k <= num_rows:
    return None
  tile_rows = 2
  splits = decode_splits(-(-num_rows // (tm * tile_rows)), -(-num_k // tk))
  return tiled_gather.TiledGatherConfig(block_n=1, tile_rows=tile_rows, chunk=32,
                                        num_splits=splits, num_warps=2)


def _nm_supported(layout: SparseLayout, num_n: int, dtype: Any) -> bool | str:
  """Prefill expands W with ``nm_matmul.expand_fn`` (plain jax.numpy: any n:m); decoding needs
  the fused kernel's Triton constraints for ``nm_config``'s launch."""
  if nm_expands(layout, num_n, dtype):
    return True
  return nm_matmul.gpu_supported(layout.nm, nm_config(layout, num_n, dtype))


def _tiled_supported(layout: SparseLayout, num_n: int, dtype: Any = None) -> bool | str:
  """Prefill needs ``tiled_spmm.expand_fn``'s constraints (tile sides powers of two); decoding
  the fused kernel's for ``tiled_config``'s launch (``dtype`` does not matter)."""
  if expands_to_dense(num_n):
    return tiled_spmm.expand_supported(layout.block_shape)
  return tiled_spmm.gpu_supported(layout.block_shape, tiled_config(layout, num_n))


def cuda_tiled_kernel(shape: tuple[int, int], tile_shape: tuple[int, int], dtype: Any,
                      x_dtype: Any, n: int, tile_fill: float) -> str | None:
  """Which CUDA kernel ``jsparse.spmm`` runs for a Tiled [M, K] matrix (``tile_shape``,
  ``dtype``, tiles holding ``tile_fill`` values on average) times n columns of ``x_dtype``:
  "tiled_gemv" (CUDA cores, 1-2 columns of sparse enough tiles: ``tiled_gemv.routes``),
  "tiled_mma" (tensor cores), or None (neither applies: the Pallas kernels)."""
  from jsparse._gpu import sparse_mma, tiled_gemv  # CUDA libraries, built with nvcc on first use
  if (tiled_gemv.routes(n, tile_fill, shape[0])
      and tiled_gemv.applies(shape, tile_shape, dtype, x_dtype, n)):
    return "tiled_gemv"
  if sparse_mma.tiled_applies(shape, tile_shape, dtype, x_dtype, n):
    return "tiled_mma"
  return None


def _spmm_tiled(data, value_columns, bitmaps, row_offsets, dense, *, interpret, layout,
                **unused):
  from jsparse._gpu import sparse_mma, tiled_gemv  # CUDA libraries, built with nvcc on first use
  kernel = None if interpret else cuda_tiled_kernel(
      layout.shape, layout.block_shape, data.dtype, dense.dtype, dense.shape[1],
      sparse_mma.mean_tile_fill(data, bitmaps))
  if kernel == "tiled_gemv":
    # Decoding at batch 1-2 on the CUDA cores where tiles are sparse enough: one FMA a stored
    # value, where the tensor-core kernel expands every element of a tile (BUILD_NOTES.md,
    # "tiled gemv").
    return tiled_gemv.gemv(data, bitmaps, row_offsets, dense, shape=layout.shape)
  if kernel == "tiled_mma":
    # Decoding on the dense tensor cores through a CUDA kernel: the Pallas kernels' per-element
    # expansion binds them at 0.5-0.8x dense (BUILD_NOTES.md, "Tiled SpMM").
    return sparse_mma.tiled_matmul(data, bitmaps, row_offsets, dense, shape=layout.shape)
  if expands_to_dense(dense.shape[1]):
    weights = tiled_spmm.expand_fn(data, bitmaps, row_offsets, shape=layout.shape,
                                   interpret=interpret)
    return dense_product.xla_product(weights, dense)
  return tiled_spmm.kernel_fn(data, bitmaps, row_offsets, dense, shape=layout.shape,
                              config=tiled_config(layout, dense.shape[1]), interpret=interpret)


def _supports(gpu_check: Callable[[SparseLayout, int], bool | str]):
  """A ``supports`` predicate: A @ B (not A.T), a kernel dtype, and Triton's tile constraints."""

  def supports(avals: Sequence[Any], params: dict) -> bool | str:
    if params["transpose"]:
      return "A.T @ B is not implemented by this kernel (only A @ B)"
    dtype = jnp.dtype(avals[0].dtype)
    if dtype not in KERNEL_DTYPES:
      return f"values must be float16, bfloat16 or float32, got {dtype}"
    dense = avals[-1]
    return gpu_check(params["layout"], dense.shape[1] if dense.ndim == 2 else 1, dtype)

  return supports


def _as_spmv(spmm_fn):
  """The SpMV lowering: SpMM with x [K] as one column."""
  def spmv(*operands, **params):
    *sparse, vector = operands
    return spmm_fn(*sparse, vector[:, None], **params)[:, 0]
  return spmv


_FAMILIES = {
    "bsr": (_spmm_bsr,
            lambda layout, n, dtype: bsr_spmm.gpu_supported(layout.block_shape,
                                                            bsr_config(layout, n))),
    "nm": (_spmm_nm, _nm_supported),
    "tiled": (_spmm_tiled, _tiled_supported),
}

for _format, (_spmm_fn, _gpu_check) in _FAMILIES.items():
  register_pallas("spmm", _format, _spmm_fn, supports=_supports(_gpu_check))
  register_pallas("spmv", _format, _as_spmv(_spmm_fn), supports=_supports(_gpu_check))
