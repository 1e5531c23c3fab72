"""Times the tensor-core kernels of issue 8 (BSR, 2:4, tiled unstructured) against the baselines.

bfloat16 throughout, float32 accumulation; weights W [M, K] times X [K, N]. Cases in priority
order (round 4: 150 s for tests and timings together, N:M first):
- 2:4 decoding, the default launch (``jsparse._gpu.structured._spmm_nm``: the matrix's packed
  positions, gathered X, no expansion) at N = 1, 8, 16 on 4096x14336, 4096x4096, 14336x4096, vs
  dense ``jnp.dot`` and torch ``to_sparse_semi_structured`` (cuSPARSELt);
- 2:4 decoding on the sparse tensor cores: ``jsparse.spmm`` on a ``jsparse.MmaNM`` (the mma.sp
  kernel, case variant "mma", run with the defaults) on the same shapes;
- 2:4 as the library routes it (case variant "routed", run with the defaults):
  ``jsparse.spmm`` on ``jsparse.cusparselt.from_nm(matrix)``, a ``CompressedNM`` holding the
  matrix and its ``MmaNM`` copy (mma.sp at decoding, cuSPARSELt at prefill), at N = 1, 8, 16
  and N = 1024, 4096 on the three weights, with torch's cuSPARSELt line timed beside it;
- 2:4 prefill (N = 1024) on 4096x4096, default (per-position dots, 128x64x128);
- candidate N:M launches per shape (NM_VARIANTS: per-position dots for decoding, other gather
  tiles, the expanding dot, prefill tiles), so that one run says which wins;
- BSR (32x32 blocks, 4096x4096, N = 1024, d = 0.2) and tiled (16x64 tiles, sparsity 0.7,
  4096x14336, N = 1): one case each; then other N:M shapes (N = 4096, 14336x4096 prefill).
Every jsparse result is checked against a float32 product of the same (rounded) matrix before it
is timed (``rel_err``). Per-case errors are recorded and the run goes on; cases stop once the time
budget is spent (the rest are listed as skipped); results are rewritten after every case. Timing
(``--timing``): ``kernel`` (the default on a GPU) reports every line, JAX and torch alike, by
device kernel time per call (``experiments.kernel_time``: each call alone in a CUPTI trace, no
Python dispatch, no loop), keeping each line's wall-clock median as ``wall_median_us``; ``loop``
(smoke runs, and the runs before 2026-11-27) reports the wall-clock medians:
``timing.JaxLoopTimer`` (jitted fori_loop) for JAX, ``timing.TorchCudaTimer`` (CUDA events) for
torch. Operand copies rotate when the working set is near the 50 MiB L2 of the H100. Weights are
drawn on the device (``jax.random``) so that building a 14336x4096 case costs little.

  python3 -P experiments/gpu_checks/structured_bench.py OUTDIR [--smoke] [--budget-s 90]
      [--timing kernel|loop] [--defaults-only] [--families bsr,nm,tiled]
      [--sparsities 0.3,0.4,0.5,0.7,0.8,0.9] [--ns 1,8,16,32]

``--families``: which case families run (default: all; the list above, filtered). ``--sparsities``
/ ``--ns``: the tiled family becomes a sweep (``tiled_sweep``) in place of its listed cases: every
sparsity (in the order given; outermost), on 4096x14336 then 14336x4096, at every N (default
launch; a missing option defaults to 0.7 / N = 1); dense ``jnp.dot`` timed once per (shape, N).

Writes OUTDIR/structured_bench.json and OUTDIR/structured_bench.md (device, versions, date, one
row per case with the issue's target and whether it is met) and prints the table last.
``--smoke``: tiny shapes, Pallas interpret mode, on whatever platform JAX has.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import time
import traceback
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import kernel_time, timing
from experiments.gpu_checks import bench_common
from jsparse.formats import BSR, NM, Tiled
from jsparse.formats.layout import SparseLayout
from pallas_kernels import bsr_spmm, nm_matmul, tiled_spmm

L2_BYTES = 50 * 2**20
BF16 = jnp.bfloat16

# Other kernel configurations timed beside the default on a few cases (the ``variant`` field).
VARIANTS = {
    # BSR at N = 128 with one 128-wide column tile (128 programs at 4096 rows; default: 32-wide).
    "bsr-n128": bsr_spmm.BsrSpmmConfig(block_n=128),
    # Tiled without split-K (round 1's launch).
    "tiled-no-split": tiled_spmm.TiledSpmmConfig(block_n=16),
    # Tiled at 4096 rows, N <= 16 (the default's 4 splits), ranks by a cumsum (the first kernel).
    "tiled-scan": tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=4, ranks="scan"),
    # The same launch on 2 warps: a 16x64 tile is 1024 values, 8 a thread on 4 warps.
    "tiled-w2": tiled_spmm.TiledSpmmConfig(block_n=16, num_splits=4, num_warps=2),
    # BSR at N = 1024 (default: 128-wide column tiles, 4 warps, 2 stages): twice the columns per
    # 32x32 block (B re-read half as often) on 8 warps; or deeper pipelining of the block loads.
    "bsr-n256-w8": bsr_spmm.BsrSpmmConfig(block_n=256, num_warps=8, num_stages=3),
    "bsr-n128-s4": bsr_spmm.BsrSpmmConfig(block_n=128, num_warps=4, num_stages=4),
}


def _nm_default(case: "Case") -> nm_matmul.NmMatmulConfig:
  from jsparse._gpu import structured
  return structured.nm_config(SparseLayout("nm", case.shape, nm=(2, 4)), case.n)


def _decode_splits(case: "Case", block_m: int, block_k: int) -> int:
  from jsparse._gpu import structured
  return structured.decode_splits(-(-case.shape[0] // block_m), -(-case.shape[1] // block_k))


def _replace(case: "Case", **changes) -> nm_matmul.NmMatmulConfig:
  """The default launch with ``changes``; split-K recomputed for the new tiles (decoding)."""
  config = dataclasses.replace(_nm_default(case), **changes)
  if case.n <= 32:
    config = dataclasses.replace(config, num_splits=_decode_splits(case, config.block_m,
                                                                   config.block_k))
  return config


# Candidate N:M launches (the ``variant`` field): case -> config. Every one reads the matrix's
# packed positions where ``nm_matmul.packed_fits`` (2:4: always), except "nm-uint8".
NM_VARIANTS: dict[str, Callable[["Case"], nm_matmul.NmMatmulConfig]] = {
    # Decoding as m per-position dots (X padded to 16 columns) instead of the gather.
    "nm-pdots-64x64": lambda c: _replace(c, block_m=64, block_k=64, block_n=16,
                                         gather_column=False, position_dots=True,
                                         prefetch=True),
    "nm-pdots-32x128": lambda c: _replace(c, block_m=32, block_k=128, block_n=16,
                                          gather_column=False, position_dots=True,
                                          prefetch=True),
    # Round 3's expanding dot (one reshaped [block_m, block_k] tile), packed positions.
    "nm-expand-dot": lambda c: _replace(c, block_m=64, block_k=128, block_n=16,
                                        gather_column=False, prefetch=False),
    # The gather with twice / half the rows a program (registers vs programs).
    "nm-gather-2m": lambda c: _replace(c, block_m=2 * _nm_default(c).block_m),
    "nm-gather-half-m": lambda c: _replace(c, block_m=max(8, _nm_default(c).block_m // 2)),
    # N = 1: wider K steps on 8 warps (more bytes in flight a program).
    "nm-gather-k256-w8": lambda c: _replace(c, block_k=256, num_warps=8),
    # The default launch with / without the next step's loads carried in the loop.
    "nm-prefetch": lambda c: _replace(c, prefetch=True),
    "nm-no-prefetch": lambda c: _replace(c, prefetch=False),
    # The default launch with uint8 positions (what packing buys).
    "nm-uint8": _nm_default,
    # Prefill: wider column tiles (each W tile expanded half as often), longer K steps (4 dots of
    # K = 32), deeper pipelining, and round 3's reshaped expansion on the same tiles.
    "nm-pdots-n256": lambda c: _replace(c, block_n=256),
    "nm-pdots-k128": lambda c: _replace(c, block_k=128),
    "nm-pdots-s4": lambda c: _replace(c, num_stages=4),
    "nm-pdots-64x64x256-w4": lambda c: _replace(c, block_m=64, block_n=256, num_warps=4),
    "nm-expand-128x64x128": lambda c: _replace(c, position_dots=False, prefetch=False),
}


@dataclasses.dataclass(frozen=True)
class Case:
  family: str  # "bsr", "nm", "tiled"
  shape: tuple[int, int]
  n: int
  density: float  # of blocks (BSR), of values (2:4: 0.5; tiled: 1 - sparsity)
  variant: str = ""  # a VARIANTS key, MMA, or "" for the configuration jsparse._gpu picks


FAMILIES = ("bsr", "nm", "tiled")
# The variant of 2:4 cases run as ``jsparse.spmm`` on an ``MmaNM`` (the mma.sp decoding kernel):
# a path of the library, so it runs with the defaults too.
MMA = "mma"
# ... and as ``jsparse.spmm`` on a ``CompressedNM`` (the library's routing between paths).
ROUTED = "routed"
LIBRARY_PATHS = ("", MMA, ROUTED)


def cases(smoke: bool, families: tuple[str, ...] = FAMILIES,
          sparsities: list[float] | None = None, ns: list[int] | None = None,
          variants: bool = True) -> list[Case]:
  """The listed cases (``listed_cases``) of ``families``; with ``sparsities`` or ``ns``, the tiled
  sweep (``tiled_sweep``) where the first tiled case was, instead of the listed tiled cases;
  without ``variants``, the default launches only."""
  listed = listed_cases(smoke)
  if sparsities is not None or ns is not None:
    first = next(i for i, case in enumerate(listed) if case.family == "tiled")
    listed = (listed[:first] + tiled_sweep(smoke, sparsities or [0.7], ns or [1])
              + [case for case in listed[first:] if case.family != "tiled"])
  return [case for case in listed if case.family in families
          and (variants or case.variant in LIBRARY_PATHS)]


def tiled_sweep(smoke: bool, sparsities: list[float], ns: list[int]) -> list[Case]:
  """Tiled cases (default launch) at every sparsity, shape and N; consecutive cases share one
  weight matrix (sparsity outermost, then the shape, N innermost)."""
  shapes = [(64, 128), (128, 64)] if smoke else [(4096, 14336), (14336, 4096)]
  return [Case("tiled", shape, n, round(1 - sparsity, 4))
          for sparsity in sparsities for shape in shapes for n in ns]


def listed_cases(smoke: bool) -> list[Case]:
  """Cases in priority order (BSR, 2:4, tiled; headline targets first). Consecutive cases share
  one weight matrix where they can (it is built once)."""
  if smoke:
    small, prefill = (64, 256), (64, 128)
    return [Case("nm", small, 1, 0.5), Case("nm", small, 8, 0.5), Case("nm", small, 16, 0.5),
            Case("nm", small, 16, 0.5, "nm-pdots-64x64"), Case("nm", small, 8, 0.5, "nm-uint8"),
            Case("nm", small, 16, 0.5, "nm-expand-dot"),
            Case("nm", small, 16, 0.5, "nm-gather-half-m"),
            Case("nm", small, 1, 0.5, "nm-prefetch"),
            Case("nm", prefill, 64, 0.5), Case("nm", prefill, 64, 0.5, "nm-no-prefetch"),
            Case("nm", prefill, 64, 0.5, "nm-expand-128x64x128"),
            Case("bsr", (64, 64), 32, 0.5), Case("tiled", (64, 128), 8, 0.3)]
  square, tall, wide = (4096, 4096), (14336, 4096), (4096, 14336)
  decode = [Case("nm", shape, n, 0.5) for shape in (wide, square, tall) for n in (1, 8, 16)]
  decode += [Case("nm", shape, n, 0.5, MMA) for shape in (wide, square, tall) for n in (1, 8, 16)]
  decode += [Case("nm", shape, n, 0.5, ROUTED) for shape in (wide, square, tall)
             for n in (1, 8, 16, 1024, 4096)]
  return decode + [
      Case("nm", square, 1024, 0.5),
      # Candidate launches: per-position dots for decoding (N = 16 and 8), then the prefill
      # tiles, then the gather's tiles.
      Case("nm", wide, 16, 0.5, "nm-pdots-64x64"), Case("nm", square, 16, 0.5, "nm-pdots-64x64"),
      Case("nm", tall, 16, 0.5, "nm-pdots-64x64"), Case("nm", wide, 8, 0.5, "nm-pdots-64x64"),
      Case("nm", square, 1024, 0.5, "nm-pdots-n256"),
      Case("nm", square, 1024, 0.5, "nm-no-prefetch"),
      Case("nm", square, 1024, 0.5, "nm-expand-128x64x128"),
      Case("nm", square, 1024, 0.5, "nm-pdots-k128"),
      Case("bsr", square, 1024, 0.2), Case("tiled", wide, 1, 0.3),
      Case("nm", wide, 1, 0.5, "nm-prefetch"), Case("nm", square, 1, 0.5, "nm-prefetch"),
      Case("nm", square, 1, 0.5, "nm-gather-half-m"),
      Case("nm", wide, 16, 0.5, "nm-no-prefetch"),
      Case("nm", wide, 16, 0.5, "nm-gather-2m"), Case("nm", wide, 8, 0.5, "nm-gather-half-m"),
      Case("nm", wide, 1, 0.5, "nm-gather-k256-w8"), Case("nm", wide, 16, 0.5, "nm-expand-dot"),
      Case("nm", wide, 16, 0.5, "nm-pdots-32x128"), Case("nm", wide, 1, 0.5, "nm-uint8"),
      Case("nm", square, 1024, 0.5, "nm-pdots-s4"),
      Case("nm", square, 1024, 0.5, "nm-pdots-64x64x256-w4"),
      Case("nm", square, 4096, 0.5), Case("nm", tall, 1024, 0.5),
      Case("nm", square, 8, 0.5, "nm-pdots-64x64"), Case("nm", tall, 8, 0.5, "nm-pdots-64x64"),
      Case("bsr", square, 1024, 0.2, "bsr-n256-w8"), Case("tiled", wide, 1, 0.3, "tiled-w2"),
  ]


def target_us(case: Case, dense_us: float) -> float | None:
  """The issue's bound on the jsparse time for this case (None: no target)."""
  if case.family == "bsr":
    return 1.3 * case.density * dense_us + 5.0
  if case.family == "nm":
    return dense_us / (1.6 if case.n <= 16 else 1.0)
  sparsity = round(1 - case.density, 2)
  if sparsity >= 0.7:
    return dense_us / 2.0
  return dense_us if sparsity >= 0.4 else None


def weights(key: jax.Array, case: Case) -> tuple[Any, jax.Array]:
  """(jsparse matrix, float32 dense copy of exactly its values, on the device)."""
  rows, cols = case.shape
  value_key, keep_key = jax.random.split(key)
  values = jax.random.normal(value_key, case.shape, jnp.float32)
  if case.family == "bsr":
    keep = jax.random.uniform(keep_key, (rows // 32, cols // 32)) < case.density
    dense = jnp.where(jnp.repeat(jnp.repeat(keep, 32, axis=0), 32, axis=1), values, 0)
    matrix = BSR.fromdense(dense.astype(BF16), block_shape=(32, 32))
  elif case.family == "nm":
    matrix = NM.fromdense(values.astype(BF16), n=2, m=4)
  else:
    dense = jnp.where(jax.random.uniform(keep_key, case.shape) < case.density, values, 0)
    matrix = Tiled.fromdense(dense.astype(BF16), tile_shape=(16, 64))
  return matrix, matrix.todense().astype(jnp.float32)


def kernel(case: Case, interpret: bool) -> Callable[..., jax.Array]:
  """fn(matrix, x) running the case's kernel with its variant's configuration, or the one
  jsparse._gpu would pick (N:M: its registered lowering itself)."""
  from jsparse._gpu import structured
  variant = VARIANTS.get(case.variant)
  if case.variant in (MMA, ROUTED):  # the matrix is an MmaNM / CompressedNM (run_case)
    import jsparse
    return lambda a, x: jsparse.spmm(a, x, impl="mma" if case.variant == MMA else "auto")
  if case.family == "nm" and not case.variant:
    return lambda a, x: structured._spmm_nm(a.data, a.indices, a.packed_indices, x,
                                            interpret=interpret, layout=a.layout)
  if case.family == "nm":
    config, packed = nm_launch(case)
    return lambda a, x: nm_matmul.kernel_fn(
        a.data, a.packed_indices if packed else a.indices, x, shape=a.shape, nm=(a.n, a.m),
        config=config, indices_packed=packed, interpret=interpret)
  if case.family == "bsr":
    return lambda a, x: bsr_spmm.kernel_fn(
        a.data, a.col_indices, a.row_offsets, x, shape=a.shape,
        config=variant or structured.bsr_config(a.layout, x.shape[1]), interpret=interpret)
  if not case.variant:  # the registered lowering: expanding, or gathering for N = 1 and K > M
    return lambda a, x: structured._spmm_tiled(a.data, a.value_columns, a.bitmaps,
                                               a.row_offsets, x, interpret=interpret,
                                               layout=a.layout)
  return lambda a, x: tiled_spmm.kernel_fn(a.data, a.bitmaps, a.row_offsets, x, shape=a.shape,
                                           config=variant, interpret=interpret)


def nm_launch(case: Case) -> tuple[nm_matmul.NmMatmulConfig, bool]:
  """(config, whether it reads the packed positions) of an N:M case: the variant's, or the
  default's (as ``structured._spmm_nm`` decides)."""
  config = NM_VARIANTS[case.variant](case) if case.variant else _nm_default(case)
  packed = case.variant != "nm-uint8" and nm_matmul.packed_fits((2, 4), config)
  return config, packed


def config_of(case: Case, matrix) -> dict:
  """The kernel configuration the case ran, as a dict (for the JSON)."""
  from jsparse._gpu import structured
  if case.variant in VARIANTS:
    return dataclasses.asdict(VARIANTS[case.variant])
  if case.variant == MMA:
    from jsparse._gpu import sparse_mma
    return {"kernel": "mma.sp", **dataclasses.asdict(sparse_mma.default_config(case.n))}
  if case.variant == ROUTED:
    from jsparse._gpu import cusparselt
    from jsparse.ops import compressed_nm
    path = compressed_nm.route(matrix, case.n, BF16, transpose_a=False, impl="auto")
    alg = (cusparselt.default_alg(*matrix.shape, cusparselt.padded_columns(case.n), BF16)
           if path == "cusparselt" else None)
    return {"path": path, "cusparselt_alg": alg}
  if case.family == "nm":
    config, packed = nm_launch(case)
    return {**dataclasses.asdict(config), "indices_packed": packed}
  if case.family == "tiled":
    from jsparse._gpu import sparse_mma, tiled_gemv
    fill = sparse_mma.mean_tile_fill(matrix.data, matrix.bitmaps)
    kernel = None if case.variant else structured.cuda_tiled_kernel(
        case.shape, matrix.tile_shape, matrix.dtype, BF16, case.n, fill)
    if kernel == "tiled_gemv":
      return {"kernel": "tiled_gemv (CUDA)",
              **dataclasses.asdict(tiled_gemv.default_config(case.n, *case.shape))}
    if kernel == "tiled_mma":
      return {"kernel": "tiled_mma (CUDA)",
              **dataclasses.asdict(sparse_mma.default_tiled_config(case.n, *case.shape, fill))}
    gather = structured.tiled_gather_config(matrix.layout, case.n)
    if gather is not None:
      return {"kernel": "tiled_gather", **dataclasses.asdict(gather)}
  choose = {"bsr": structured.bsr_config, "nm": structured.nm_config,
            "tiled": structured.tiled_config}[case.family]
  return dataclasses.asdict(choose(matrix.layout, case.n))


def matrix_bytes(matrix, case: Case) -> int:
  """Bytes of W the case's kernel reads (N:M: values and one of its two position arrays; tiled:
  values, offsets and the bitmaps, or the values' columns where the gather kernel runs)."""
  arrays = jax.tree_util.tree_leaves(matrix)
  if case.variant == ROUTED:  # the bytes of the path the call takes
    from jsparse.ops import compressed_nm
    path = compressed_nm.route(matrix, case.n, BF16, transpose_a=False, impl="auto")
    arrays = {"mma": [matrix.mma.values, matrix.mma.meta] if matrix.mma else [],
              "cusparselt": [matrix.data],
              "matrix": [matrix.matrix.data, matrix.matrix.packed_indices]}[path]
  elif case.family == "nm" and case.variant != MMA:
    arrays = [matrix.data, matrix.packed_indices if nm_launch(case)[1] else matrix.indices]
  if case.family == "tiled":
    from jsparse._gpu import structured
    from jsparse._gpu import sparse_mma
    cuda = not case.variant and sparse_mma.tiled_applies(case.shape, matrix.tile_shape,
                                                         matrix.dtype, BF16, case.n)
    gather = (not case.variant and not cuda
              and structured.tiled_gather_config(matrix.layout, case.n))
    arrays = [matrix.data, matrix.row_offsets,
              matrix.value_columns if gather else matrix.bitmaps]
  return sum(int(a.size) * a.dtype.itemsize for a in arrays)


# Whether lines report device kernel time (``--timing kernel``); set by ``main``.
KERNEL_TIME = False


def measured(timer: timing.Timer, config) -> dict:
  """The timer's wall-clock measurement; with ``KERNEL_TIME`` its ``median_us`` (what the
  targets and ratios read) is the device kernel time per call instead, the wall-clock median
  kept as ``wall_median_us`` and the kernel fields (``kernel_*``) added."""
  result = timer.measure(config).asdict()
  return kernel_time.as_median(result, timer) if KERNEL_TIME else result


def time_jax(fn, operands: tuple, working_set: int, config) -> tuple[dict, Any]:
  copies = timing.operand_copies(working_set, L2_BYTES)
  sets = [operands] + [jax.tree_util.tree_map(jnp.copy, operands) for _ in range(copies - 1)]
  timer = timing.JaxLoopTimer(fn, sets)
  out = timer.run_once()
  result = measured(timer, config)
  result["cache"] = timing.cache_state(working_set, L2_BYTES, copies)
  return result, out


def time_torch(make_call: Callable[[], Callable[[], Any]], working_set: int, config) -> dict:
  copies = timing.operand_copies(working_set, L2_BYTES)
  timer = timing.TorchCudaTimer([make_call() for _ in range(copies)])
  timer.run_once()
  result = measured(timer, config)
  result["cache"] = timing.cache_state(working_set, L2_BYTES, copies)
  return result


def torch_baseline(case: Case, dense: jax.Array, x: jax.Array) -> Callable[[], Callable] | None:
  """A factory of torch calls (one per operand copy) for the case's torch line, or None."""
  import torch
  if (case.family == "tiled" or case.variant not in ("", ROUTED)
      or not torch.cuda.is_available()):
    return None
  w = torch.from_numpy(np.array(dense)).to("cuda", torch.bfloat16)
  xt = torch.from_numpy(np.array(x.astype(jnp.float32))).to("cuda", torch.bfloat16)
  if case.family == "bsr":
    from torch.sparse._triton_ops import bsr_dense_mm
    def make():
      a = w.clone().to_sparse_bsr((32, 32))
      b = xt.clone()
      return lambda: bsr_dense_mm(a, b)
    return make
  from torch.sparse import to_sparse_semi_structured
  def make():
    a = to_sparse_semi_structured(w.clone())
    # cuSPARSELt needs N a multiple of 8 (at least 8 columns, also for decoding).
    b = torch.nn.functional.pad(xt, (0, -xt.shape[1] % 8)) if xt.shape[1] % 8 else xt.clone()
    return lambda: torch.mm(a, b)
  return make


def run_case(case: Case, row: dict, built: dict, dense_cache: dict, key: jax.Array,
             smoke: bool, config) -> None:
  """Fills ``row`` with the case's timings (raises on a jsparse failure)."""
  weight_key = (case.family, case.shape, case.density)
  if weight_key not in built:
    built.clear()  # one weight matrix on the device at a time
    built[weight_key] = weights(jax.random.fold_in(key, len(dense_cache) + 1000), case)
  matrix, dense = built[weight_key]
  if case.variant == MMA:
    from jsparse.formats import MmaNM
    matrix = MmaNM.from_nm(matrix)
  if case.variant == ROUTED:
    from jsparse._gpu import cusparselt
    matrix = cusparselt.from_nm(matrix)
  x = jax.random.normal(jax.random.fold_in(key, case.n), (case.shape[1], case.n)).astype(BF16)
  expected = jnp.dot(dense, x.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  out_bytes = case.shape[0] * case.n * 2
  weight_bytes = matrix_bytes(matrix, case)
  sparse_set = weight_bytes + x.size * 2 + out_bytes
  row["config"] = config_of(case, matrix)
  row["weight_bytes"] = weight_bytes
  result, out = time_jax(kernel(case, smoke), (matrix, x), sparse_set, config)
  row["rel_err"] = float(jnp.max(jnp.abs(out.astype(jnp.float32) - expected))
                         / (jnp.max(jnp.abs(expected)) + 1e-30))
  row["jsparse"] = result
  shapes = (case.shape, case.n)
  if shapes not in dense_cache:  # the dense time depends on the shapes only
    wj = dense.astype(BF16)
    dense_cache[shapes], _ = time_jax(
        bench_common.dense_bf16, (wj, x),
        wj.size * 2 + x.size * 2 + out_bytes, config)
  row["dense"] = dense_cache[shapes]
  bound = target_us(case, row["dense"]["median_us"])
  if bound is not None:
    row["target_us"] = bound
    row["target_met"] = result["median_us"] <= bound
  make = None if smoke else torch_baseline(case, dense, x)
  if make is not None:
    try:
      row["torch"] = time_torch(make, sparse_set, config)
    except Exception as error:  # noqa: BLE001 - a baseline failing must not stop the run
      row["torch"] = {"error": f"{type(error).__name__}: {error}"[:300]}


def run(outdir: pathlib.Path, smoke: bool, budget_s: float, meta: dict,
        all_cases: list[Case]) -> list[dict]:
  config = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.002, max_total_s=0.25)
  if smoke:
    config = timing.TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0,
                                 max_inner=1)
  key = jax.random.key(0)
  start, rows, dense_cache, built = time.monotonic(), [], {}, {}
  for case in all_cases:
    row = {**dataclasses.asdict(case)}
    rows.append(row)
    if time.monotonic() - start > budget_s:
      row["error"] = "skipped: time budget spent"
      continue
    case_start = time.monotonic()
    try:
      run_case(case, row, built, dense_cache, key, smoke, config)
    except Exception as error:  # noqa: BLE001 - record and go on
      row["error"] = f"{type(error).__name__}: {error}"[:500]
      row["traceback"] = traceback.format_exc()[-1500:]
    row["case_s"] = round(time.monotonic() - case_start, 2)
    print(summary_line(row), flush=True)
    write(outdir, meta, rows + [{**dataclasses.asdict(c), "error": "not reached yet"}
                                for c in all_cases[len(rows):]])
  return rows


def _us(entry: Any) -> str:
  if isinstance(entry, dict) and "median_us" in entry:
    return f"{entry['median_us']:.1f}"
  return "-" if entry is None else "err"


def summary_line(row: dict) -> str:
  sparse, dense = row.get("jsparse"), row.get("dense")
  speedup = (f"{dense['median_us'] / sparse['median_us']:.2f}x"
             if sparse and dense and "median_us" in sparse else "-")
  torch_entry = row.get("torch")
  vs_torch = (f"{torch_entry['median_us'] / sparse['median_us']:.2f}x"
              if sparse and isinstance(torch_entry, dict) and "median_us" in torch_entry else "-")
  err = f"{row['rel_err']:.1e}" if "rel_err" in row else "-"
  target = (f"{row['target_us']:.1f} {'met' if row['target_met'] else 'MISSED'}"
            if "target_us" in row else "-")
  note = row.get("error", "") or (torch_entry or {}).get("error", "")
  # W's bytes over the time: how near the memory-bound cases come to the H100's ~3 TB/s.
  rate = (f"{row['weight_bytes'] / sparse['median_us'] / 1e3:.0f}"
          if sparse and "median_us" in sparse and "weight_bytes" in row else "-")
  return (f"| {row['family']} | {row['variant'] or 'default'} | {row['shape'][0]}x"
          f"{row['shape'][1]} | {row['n']} | {row['density']} | {_us(sparse)} | {_us(dense)} | "
          f"{speedup} | {target} | {_us(torch_entry)} | {vs_torch} | {rate} | {err} | "
          f"{note[:80]} |")


HEADER = ("| format | config | W (MxK) | N | density | jsparse us | dense us | dense/jsparse | "
          "target us | torch us | torch/jsparse | W GB/s | rel err | note |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def write(outdir: pathlib.Path, meta: dict, rows: list[dict]) -> str:
  """Writes the JSON and the markdown table (with the run's metadata); returns the table."""
  (outdir / "structured_bench.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=1))
  table = "\n".join([HEADER] + [summary_line(row) for row in rows])
  (outdir / "structured_bench.md").write_text(
      "# Issue 8 kernels vs dense (bfloat16, float32 accumulation)\n\n"
      + "".join(f"- {name}: {value}\n" for name, value in meta.items()) + f"\n{table}\n"
      + tiled_grid(rows))
  return table


def tiled_grid(rows: list[dict]) -> str:
  """Where the tiled default cases span several sparsities: dense/jsparse per (shape, N) and
  sparsity, with the target's verdict ("" otherwise)."""
  tiled = [row for row in rows if row["family"] == "tiled" and not row["variant"]]
  sparsities = sorted({round(1 - row["density"], 2) for row in tiled})
  if len(sparsities) < 2:
    return ""
  cells: dict[tuple, dict[float, str]] = {}
  for row in tiled:
    sparse, dense = row.get("jsparse"), row.get("dense")
    if sparse and dense and "median_us" in sparse:
      cell = f"{dense['median_us'] / sparse['median_us']:.2f}x"
      if "target_met" in row:
        cell += " met" if row["target_met"] else " MISSED"
    elif "skipped" in row.get("error", "") or "not reached" in row.get("error", ""):
      cell = "-"
    else:
      cell = "err"
    cells.setdefault((tuple(row["shape"]), row["n"]), {})[round(1 - row["density"], 2)] = cell
  lines = [("\n## Tiled: dense/jsparse by sparsity (target: >= 2x from 70%, >= 1x from 40%)\n\n"
            "| W (MxK) | N | " + " | ".join(f"{s:.0%}" for s in sparsities) + " |"),
           "|---|---|" + "---|" * len(sparsities)]
  for (shape, n), by_sparsity in cells.items():
    lines.append(f"| {shape[0]}x{shape[1]} | {n} | "
                 + " | ".join(by_sparsity.get(s, "") for s in sparsities) + " |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--budget-s", type=float, default=90.0)
  parser.add_argument("--families", type=_names, default=FAMILIES,
                      help="comma-separated case families to run (default: bsr,nm,tiled)")
  parser.add_argument("--sparsities", type=_floats, default=None,
                      help="tiled sweep sparsities, e.g. 0.3,0.4,0.5,0.7,0.8,0.9")
  parser.add_argument("--ns", type=_ints, default=None, help="tiled sweep N, e.g. 1,8,16,32")
  parser.add_argument("--defaults-only", action="store_true",
                      help="the default launches only (no VARIANTS cases)")
  parser.add_argument("--timing", choices=("kernel", "loop"), default="kernel",
                      help="device kernel time per call (default; smoke runs: loop) or the "
                           "wall-clock medians")
  args = parser.parse_args()
  global KERNEL_TIME
  KERNEL_TIME = args.timing == "kernel" and not args.smoke
  all_cases = cases(args.smoke, args.families, args.sparsities, args.ns,
                    variants=not args.defaults_only)
  args.outdir.mkdir(parents=True, exist_ok=True)
  meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "devices": [getattr(d, "device_kind", str(d)) for d in jax.devices()],
          "jax": jax.__version__, "dtype": "bfloat16", "smoke": args.smoke,
          "timing": ("device kernel time per call (experiments.kernel_time, CUPTI), every "
                     "line alike; median us (wall-clock medians in the JSON: wall_median_us)"
                     if KERNEL_TIME else
                     f"jax: JaxLoopTimer (jitted fori_loop, {timing.UNROLL} calls an "
                     "iteration), torch: CUDA events; median us"),
          "budget_s": args.budget_s,
          **({"families": ",".join(args.families)} if args.families != FAMILIES else {}),
          **({"tiled_sweep": f"sparsities {args.sparsities or [0.7]}, N {args.ns or [1]}"}
             if args.sparsities is not None or args.ns is not None else {}),
          "targets": ("BSR: <= 1.3 x density x dense + 5 us, >= 5x torch bsr_dense_mm; 2:4: "
                      ">= 1.6x dense at N <= 16, >= 1.0x at N >= 1024; tiled: >= 2x dense at "
                      ">= 70% sparsity, >= 1x from 40%")}
  try:
    import torch
    meta["torch"] = torch.__version__
    import triton
    meta["triton"] = triton.__version__
  except ImportError:
    pass
  rows = run(args.outdir, args.smoke, args.budget_s, meta, all_cases)
  print(write(args.outdir, meta, rows))
  grid = tiled_grid(rows)
  if grid:
    print(grid)


def _names(text: str) -> tuple[str, ...]:
  names = tuple(name.strip() for name in text.split(",") if name.strip())
  unknown = sorted(set(names) - set(FAMILIES))
  if not names or unknown:
    raise argparse.ArgumentTypeError(f"families are {','.join(FAMILIES)}; got {text!r}")
  return names


def _floats(text: str) -> list[float]:
  values = [float(value) for value in text.split(",") if value.strip()]
  if not values or any(not 0 <= value < 1 for value in values):
    raise argparse.ArgumentTypeError(f"sparsities in [0, 1), comma-separated; got {text!r}")
  return values


def _ints(text: str) -> list[int]:
  values = [int(value) for value in text.split(",") if value.strip()]
  if not values or any(value < 1 for value in values):
    raise argparse.ArgumentTypeError(f"N >= 1, comma-separated; got {text!r}")
  return values


if __name__ == "__main__":
  main()
