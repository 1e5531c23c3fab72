"""2:4 products for decoding (N <= 32 columns) on the sparse tensor cores, through warp-level
``mma.sp`` in a CUDA custom call (``csrc/cuda/sparse_mma_ffi.cu``).

Decoding multiplies a large weight by a few columns: the time is the weight's bytes over the
memory bandwidth. A 2:4 weight holds half the values plus 4 bits of positions a group of 4
(0.56x dense's bytes). The Pallas kernels expand it to dense tiles with selects and are bound by
that arithmetic (BUILD_NOTES.md); cuSPARSELt's kernels are slower than dense at N <= 16. Here
the sparse tensor cores do the expansion: the weight is stored once in the order of the
``mma.m16n8k32`` registers (``pack``), each lane streams its operands with 16-byte loads, and a
block's warps split K and sum their tiles in shared memory.

- The weight: ``jsparse.MmaNM`` (``jsparse.formats.mma_nm``, ``MmaNM.from_nm(matrix)``).
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
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jsparse._gpu import nvcc
from jsparse.formats.mma_nm import MmaNM

SOURCE = nvcc.SOURCE_DIR / "sparse_mma_ffi.cu"
TARGET = "jsparse_sparse_mma_matmul"
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
  return nvcc.load(library_path(), build, {TARGET: "JsparseSparseMmaMatmul"})


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


if __name__ == "__main__":
  if sys.argv[1:] == ["build"]:
    print(build(verbose=True))
  else:
    sys.exit("usage: python -m jsparse._gpu.sparse_mma build")
