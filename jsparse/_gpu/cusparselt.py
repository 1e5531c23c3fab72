"""2:4 sparse x dense products on the GPU's sparse tensor cores through cuSPARSELt.

Pallas cannot emit Hopper's sparse ``wgmma`` (BUILD_NOTES.md); NVIDIA's cuSPARSELt can. This
module builds ``csrc/cuda/cusparselt_ffi.cc`` into a shared library with ``nvcc`` (against the
``nvidia-cusparselt`` wheel that torch installs and jaxlib's XLA FFI headers), registers its two
handlers as ``jax.ffi`` targets for the CUDA platform, and wraps them:

- ``compress(w)``: a dense [M, K] bfloat16/float16 matrix with at most 2 nonzeros in every group
  of 4 along K -> ``CompressedNM``, cuSPARSELt's opaque compressed copy (uint8, on the device).
  Compress once per weight; the compressed layout is specific to the GPU.
- ``from_nm(matrix)``: the same from a 2:4 ``jsparse.NM`` matrix (expanded, then compressed),
  holding the matrix too: ``jsparse.spmm`` on it then routes each call, cuSPARSELt from
  ``ROUTE_MIN_N`` columns up and the NM matrix's Pallas kernels below
  (``jsparse.ops.compressed_nm``).
- ``matmul(a, x, alg=None)``: ``CompressedNM`` [M, K] @ x [K, N] -> [M, N] of x's dtype,
  float32 accumulation; ``matmul_transposed(x, a)``: x [N, K] @ A.T -> [N, M] (a layer's
  product, no transposes around the call). Both run under ``jit`` and ``vmap`` (over x, one
  call per batch entry); plans are cached per (M, K, N, dtype, algorithm, layout) in the
  library. No autodiff: for inference.
- ``autotune(a, n)``: times every algorithm cuSPARSELt offers for the shape (eagerly) and
  records the fastest for the products; without it, N >= ``PREFILL_MIN_N`` takes algorithm 3.

When to use it (H100, experiments/results/h100-2026-11-27-cusparselt/): prefill. At N = 1024
and 4096 on 4096x4096, 14336x4096 and 4096x14336 bf16 weights it ran 1.34-1.54x faster than
dense and beat ``jsparse.spmm`` on the ``NM`` matrix (expand, then XLA's dot) everywhere. For
decoding (N <= 16), ``jsparse.spmm``'s Pallas kernels are faster.

GPU-only and optional: nothing here runs in CI (no GPU, no nvcc). ``available()`` says whether
the library can be loaded (or why not); ``build()`` compiles it (``python -m
jsparse._gpu.cusparselt build``). The library goes to ``$JSPARSE_CUSPARSELT_DIR`` or
``~/.cache/jsparse``, named by a hash of its source. One GPU a process: the cuSPARSELt handle and
the plans belong to the device that is current at the first call.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jsparse._gpu import nvcc
from jsparse.formats.compressed_nm import CompressedNM
from jsparse.formats.mma_nm import MmaNM
from jsparse.formats.nm import first_overfull_group
from pallas_kernels import _common

SOURCE = nvcc.SOURCE_DIR / "cusparselt_ffi.cc"
TARGETS = {"jsparse_cusparselt_compress": "JsparseCusparseltCompress",
           "jsparse_cusparselt_matmul": "JsparseCusparseltMatmul"}
DTYPES = {jnp.dtype(jnp.bfloat16): 0, jnp.dtype(jnp.float16): 1}
# cuSPARSELt's 16-bit row-major products: M and K multiples of 16 (A), N padded to 16 here.
MULTIPLE = 16


def library_path() -> pathlib.Path:
  """Where the library built from the current source lives (``nvcc.library_path``). Raises
  FileNotFoundError without the source (an installed package: build from a source checkout)."""
  return nvcc.library_path(SOURCE, "jsparse_cusparselt")


def cusparselt_root() -> pathlib.Path:
  """The ``nvidia-cusparselt`` wheel's folder (include/, lib/)."""
  import nvidia.cusparselt  # the wheel torch depends on
  return pathlib.Path(list(nvidia.cusparselt.__path__)[0])


def build(verbose: bool = False) -> pathlib.Path:
  """Compiles the library with nvcc (sm_90) against the cuSPARSELt wheel; returns its path.
  Raises RuntimeError with the compiler's output on failure."""
  root = cusparselt_root()
  return nvcc.build(SOURCE, library_path(),
                    [f"-I{root / 'include'}", f"-L{root / 'lib'}", "-l:libcusparseLt.so.0",
                     "-Xlinker", f"-rpath={root / 'lib'}"], verbose=verbose)


@functools.lru_cache(maxsize=None)
def load() -> ctypes.CDLL:
  """The library (built first if missing), its handlers registered as jax.ffi targets."""
  library = nvcc.load(library_path(), build, TARGETS)
  library.jsparse_cusparselt_compressed_size.restype = ctypes.c_size_t
  library.jsparse_cusparselt_compressed_size.argtypes = [
      ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
  library.jsparse_cusparselt_alg_count.restype = ctypes.c_int
  library.jsparse_cusparselt_alg_count.argtypes = [ctypes.c_int64, ctypes.c_int64,
                                                   ctypes.c_int64, ctypes.c_int, ctypes.c_int64]
  library.jsparse_cusparselt_workspace_size.restype = ctypes.c_int64
  library.jsparse_cusparselt_workspace_size.argtypes = [
      ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_int64,
      ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t]
  return library


@functools.lru_cache(maxsize=None)
def available() -> bool | str:
  """True when a CUDA device is visible and the library loads (building it if needed), else
  why not. Decided once a process: every ``jsparse.spmm`` on a ``CompressedNM`` asks, and a
  failed build is not retried on each call."""
  return nvcc.availability(load)


def compressed_size(shape: tuple[int, int], dtype: Any) -> int:
  """Bytes of the compressed copy of an [M, K] matrix of ``dtype`` (asks the library)."""
  error = ctypes.create_string_buffer(512)
  size = load().jsparse_cusparselt_compressed_size(int(shape[0]), int(shape[1]),
                                                   DTYPES[jnp.dtype(dtype)], error, 512)
  if size == 0:
    raise ValueError(f"cuSPARSELt refuses an {shape[0]}x{shape[1]} {jnp.dtype(dtype)} matrix: "
                     f"{error.value.decode(errors='replace')}")
  return int(size)


def check_two_four(w: Any, name: str = "w") -> None:
  """Raises ValueError naming ``name`` unless w (concrete, [M, K]) keeps at most 2 nonzeros in
  every group of 4 consecutive entries of a row."""
  overfull = first_overfull_group(w, 2, 4)
  if overfull is not None:
    row, group, count = overfull
    raise ValueError(f"{name} is not 2:4 sparse along K: row {row}, columns {4 * group}.."
                     f"{4 * group + 3} hold {count} nonzeros (at most 2 of every 4)")


def _check_matrix(w: Any, name: str) -> None:
  if jnp.ndim(w) != 2:
    raise ValueError(f"{name} must be 2-D [M, K], got shape {jnp.shape(w)}")
  if jnp.dtype(w.dtype) not in DTYPES:
    raise TypeError(f"{name} must be bfloat16 or float16 for cuSPARSELt, got {w.dtype}")
  m, k = w.shape
  if m % MULTIPLE or k % MULTIPLE:
    raise ValueError(f"{name}'s shape {tuple(w.shape)} must be multiples of {MULTIPLE} for "
                     "cuSPARSELt")


def compress(w: jax.Array) -> CompressedNM:
  """cuSPARSELt's compressed copy of ``w`` [M, K] (bfloat16/float16, 2:4 along K).

  A concrete ``w`` is checked on the host (``check_two_four``); a traced one cannot be, and
  entries beyond 2 of a group would be dropped silently by the compression.
  Raises ValueError/TypeError naming ``w``; RuntimeError without a GPU or the library."""
  _check_matrix(w, "w")
  if not isinstance(w, jax.core.Tracer):
    check_two_four(w)
  return _compress(w)


def _compress(w: jax.Array) -> CompressedNM:
  """``compress`` of a checked ``w`` whose 2:4 pattern holds."""
  verdict = available()
  if verdict is not True:
    raise RuntimeError(f"compress needs cuSPARSELt on a CUDA GPU, which is not available: "
                       f"{verdict}")
  size = compressed_size(w.shape, w.dtype)
  data = jax.ffi.ffi_call("jsparse_cusparselt_compress", jax.ShapeDtypeStruct((size,), jnp.uint8),
                          vmap_method="sequential")(w)
  return CompressedNM(data, tuple(w.shape), jnp.dtype(w.dtype))


def from_nm(matrix: Any, *, keep_matrix: bool = True, decoding: bool = True) -> CompressedNM:
  """``compress`` of a 2:4 ``jsparse.NM`` matrix (bfloat16/float16 values), holding ``matrix``
  too unless ``keep_matrix=False`` (then ``jsparse.spmm`` has no Pallas path and no CPU path),
  and with ``decoding`` its ``jsparse.MmaNM`` copy (calls of up to
  ``sparse_mma.ROUTE_MAX_N`` columns then run jsparse's mma.sp kernel; 0.56x the dense
  weight's bytes more). Raises ValueError for another n:m."""
  if (matrix.n, matrix.m) != (2, 4):
    raise ValueError(f"matrix must be 2:4 for cuSPARSELt, got {matrix.n}:{matrix.m}")
  dense = matrix.todense()
  _check_matrix(dense, "matrix")
  # An NM matrix holds the pattern by construction: no host copy of it to check.
  compressed = _compress(dense)
  return dataclasses.replace(compressed, matrix=matrix if keep_matrix else None,
                             mma=MmaNM.from_nm(matrix) if decoding else None)


def padded_columns(n: int) -> int:
  """The N a product of ``n`` columns runs at: ``n`` rounded up to a multiple of 16."""
  return -(-n // MULTIPLE) * MULTIPLE


def alg_count(m: int, k: int, n: int, dtype: Any, *, tokens_major: bool = False) -> int:
  """How many algorithms (config IDs 0 .. count - 1) cuSPARSELt offers for an [m, k] x [k, n]
  product of ``dtype`` (``tokens_major``: the layout of ``matmul_transposed``)."""
  found = load().jsparse_cusparselt_alg_count(m, k, n, DTYPES[jnp.dtype(dtype)],
                                              _layout(tokens_major))
  if found < 1:
    raise ValueError(f"cuSPARSELt has no algorithm for {m}x{k} @ {k}x{n} {jnp.dtype(dtype)}")
  return int(found)


# Algorithms chosen by ``autotune``, per (M, K, N, dtype, tokens_major): the products use them.
_TUNED: dict[tuple[int, int, int, str, bool], int] = {}
# Without a tuned choice, N >= PREFILL_MIN_N takes PREFILL_ALG, smaller N the library's default.
# H100, bf16: algorithm 3 took 0.69-0.79x dense's time on 4096x4096 @ 1024 / 4096, 4096x14336 and
# 14336x4096 @ 1024, within 1.10x of each shape's best; the library's default, 0.81-1.28x
# (experiments/results/h100-2026-11-27-cusparselt/algs/). At N = 512 algorithm 3 was faster than
# the default on 4096x4096 and 14336x4096 (0.88x, 0.84x its time), at N <= 256 mostly slower
# (h100-2026-11-27-cusparselt-routing/run1/crossover/).
PREFILL_ALG = 3
PREFILL_MIN_N = 512
# ``jsparse.spmm`` on a CompressedNM that holds its NM matrix runs on cuSPARSELt from this many
# columns of B up, on the matrix's Pallas kernels below (jsparse.ops.compressed_nm.route). H100,
# bf16, the three weights above, kernel us: at N = 16 the Pallas kernels were faster (12.6 / 38.7
# / 35.8 against cuSPARSELt's 18.0 / 46.3 / 60.4); at N = 32 too since their joined tile covers
# 32 columns (15.6 / 42.9 / 40.3 against 18.7 / 43.4 / 57.3, h100-2026-11-27-nm-skinny/); from
# N = 64 cuSPARSELt was faster on two of the three (17.8 / 44.2 / 61.1 against 22.0 / 57.2 /
# 54.6) and from 128 on all (h100-2026-11-27-cusparselt-routing/).
ROUTE_MIN_N = 33
# ... and only for weights of at least this many entries (M * K). A layer's x @ W.T on the H100,
# cuSPARSELt's time over the Pallas path's (h100-2026-11-27-cusparselt-routing/run3, run4):
# MiniLM's 384x384, 1536x384 and 384x1536 weights 0.99-1.9 at N = 128, 0.96-1.2 at 4096;
# 1024x1024 0.94 / 0.95; 1024x4096 1.04 / 0.61; 4096x1024, 2048x2048 0.79-0.90 / 0.74-0.90;
# 4096x4096 0.47 / 0.60.
ROUTE_MIN_WEIGHT = 1024 * 1024


def default_alg(m: int, k: int, n: int, dtype: Any, *, tokens_major: bool = False) -> int | None:
  """The algorithm the products use for a shape when none is given: ``autotune``'s choice, else
  ``PREFILL_ALG`` at N >= ``PREFILL_MIN_N``, else None (the library's default)."""
  tuned = _TUNED.get((m, k, n, jnp.dtype(dtype).name, bool(tokens_major)))
  if tuned is not None:
    return tuned
  return PREFILL_ALG if n >= PREFILL_MIN_N else None


def autotune(a: CompressedNM, n: int, *, calls: int = 5, repeat: int = 10,
             tokens_major: bool = False) -> int:
  """Times every algorithm cuSPARSELt offers for ``a`` @ [K, n] (with ``tokens_major``, the
  ``matmul_transposed`` of [n, K]) on random x, records the fastest for the products and
  returns it. Each timing is the median over ``calls`` of one jitted loop of ``repeat``
  dependent products (x nudged by each result), so that dispatch, which exceeds short kernels
  (an H100's products at N = 128 take 20-60 us), is paid once per loop rather than per product.
  Call outside ``jit``, once per shape.
  Raises ValueError naming ``n``, ``calls`` or ``repeat`` when not a positive int."""
  for name, value in (("n", n), ("calls", calls), ("repeat", repeat)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  m, k = a.shape
  padded = padded_columns(n)
  x = jax.random.normal(jax.random.key(0), (k, padded)).astype(a.dtype)
  if tokens_major:
    x = x.T

  def loop(a, x, alg):
    def body(_, x):
      out = matmul_transposed(x, a, alg=alg) if tokens_major else matmul(a, x, alg=alg)
      return x + (out[0, 0] * 0).astype(x.dtype)  # a dependence: the products run in turn
    return jax.lax.fori_loop(0, repeat, body, x)

  medians = []
  for alg in range(alg_count(m, k, padded, a.dtype, tokens_major=tokens_major)):
    run = jax.jit(functools.partial(loop, alg=alg))
    jax.block_until_ready(run(a, x))
    times = []
    for _ in range(calls):
      start = time.perf_counter()
      jax.block_until_ready(run(a, x))
      times.append(time.perf_counter() - start)
    medians.append(float(np.median(times)))
  best = int(np.argmin(medians))
  _TUNED[(m, k, padded, jnp.dtype(a.dtype).name, bool(tokens_major))] = best
  return best


# The custom call's layouts (csrc/cuda/cusparselt_ffi.cc, enum Layout): B [K, N] row-major; or
# tokens-major X [N, K] row-major, read as a transposed row-major operand (TOKENS_MAJOR, what
# matmul_transposed uses) or as a column-major one (TOKENS_MAJOR_COLUMNS: the same memory,
# another description; the layer probe measured both alike, H100 2026-11-27).
ROW_MAJOR, TOKENS_MAJOR, TOKENS_MAJOR_COLUMNS = 0, 1, 2


def _layout(tokens_major: bool) -> int:
  return TOKENS_MAJOR if tokens_major else ROW_MAJOR


def workspace_size(m: int, k: int, n: int, dtype: Any, alg: int | None, layout: int) -> int:
  """Bytes of workspace the product's plan needs; builds the plan (on the host, while tracing),
  so that the call itself only launches. Raises ValueError with cuSPARSELt's message."""
  error = ctypes.create_string_buffer(512)
  size = load().jsparse_cusparselt_workspace_size(m, k, n, DTYPES[jnp.dtype(dtype)],
                                                  -1 if alg is None else alg, layout, error, 512)
  if size < 0:
    raise ValueError(f"cuSPARSELt has no plan for {m}x{k} @ {k}x{n} {jnp.dtype(dtype)} "
                     f"(algorithm {alg}, layout {layout}): {error.value.decode(errors='replace')}")
  return int(size)


def _product(a: CompressedNM, operand: jax.Array, *, alg: int | None,
             layout: int) -> jax.Array:
  """The custom call on a checked operand: x [K, N] -> [M, N] (``ROW_MAJOR``), or tokens-major
  x [N, K] -> [N, M]; N padded to a multiple of 16 for the call and the padding cut off."""
  if alg is not None and (not isinstance(alg, int) or alg < 0):
    raise ValueError(f"alg must be None or an int >= 0, got {alg!r}")
  tokens_major = layout != ROW_MAJOR
  m, k = a.shape
  n = operand.shape[0 if tokens_major else 1]
  padded = padded_columns(n)
  if alg is None:
    alg = default_alg(m, k, padded, a.dtype, tokens_major=tokens_major)
  elif alg >= (count := alg_count(m, k, padded, a.dtype, tokens_major=tokens_major)):
    raise ValueError(f"alg must be below {count} (cuSPARSELt's algorithms for {m}x{k} @ "
                     f"{k}x{padded}), got {alg}")
  if tokens_major:
    operand = _common.pad_rows(operand, padded)
    out_shape = (padded, m)
  else:
    operand = _common.pad_columns(operand, MULTIPLE)
    out_shape = (m, padded)
  workspace = workspace_size(m, k, padded, a.dtype, alg, layout)
  out, _ = jax.ffi.ffi_call("jsparse_cusparselt_matmul",
                            (jax.ShapeDtypeStruct(out_shape, operand.dtype),
                             jax.ShapeDtypeStruct((max(workspace, 1),), jnp.uint8)),
                            vmap_method="sequential")(
      a.data, operand, m=np.int64(m), k=np.int64(k), alg=np.int64(-1 if alg is None else alg),
      layout=np.int64(layout))
  if padded == n:
    return out
  return out[:n] if tokens_major else out[:, :n]


def _check_operand(a: CompressedNM, x: Any, k_axis: int, what: str) -> None:
  k = a.shape[1]
  if jnp.ndim(x) != 2 or x.shape[k_axis] != k:
    raise ValueError(f"x must be {what} with K = {k}, got shape {jnp.shape(x)}")
  if jnp.dtype(x.dtype) != jnp.dtype(a.dtype):
    raise TypeError(f"x must have the compressed matrix's dtype {a.dtype}, got {x.dtype}")


def matmul(a: CompressedNM, x: jax.Array, *, alg: int | None = None) -> jax.Array:
  """``A @ x``: A the compressed [M, K], x [K, N] of A's dtype -> [M, N] of that dtype (float32
  accumulation). N is padded to a multiple of 16 for the call (a copy of x when it is not).
  ``alg``: cuSPARSELt's algorithm (0 .. ``alg_count`` - 1); None takes ``default_alg``.
  Raises ValueError/TypeError naming ``x`` or ``alg``."""
  _check_operand(a, x, 0, "[K, N]")
  return _product(a, x, alg=alg, layout=ROW_MAJOR)


def matmul_transposed(x: jax.Array, a: CompressedNM, *, alg: int | None = None) -> jax.Array:
  """``x @ A.T``: x [N, K] of A's dtype (N tokens, row-major) -> [N, M], a linear layer's
  product, with no transposes around the call: cuSPARSELt reads x as the transposed operand and
  writes the result column-major. Otherwise as ``matmul`` (N padded to 16, ``alg``).
  Raises ValueError/TypeError naming ``x`` or ``alg``."""
  _check_operand(a, x, 1, "[N, K]")
  return _product(a, x, alg=alg, layout=TOKENS_MAJOR)


if __name__ == "__main__":
  if sys.argv[1:] == ["build"]:
    print(build(verbose=True))
  else:
    raise SystemExit("usage: python -m jsparse._gpu.cusparselt build")
