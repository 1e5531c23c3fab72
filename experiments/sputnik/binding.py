"""ctypes binding to libsputnik_jsparse.so: Sputnik's float32 SpMM and SDDMM (Gale et al., SC20).

The library is built by ``experiments/sputnik/build.sh`` from Sputnik's public source (fetched
into the git-ignored ``third_party/sputnik``) and ``shim.cu``. Device arrays are taken through
``__cuda_array_interface__`` (torch, CuPy, ...), so this module imports no GPU framework.

What Sputnik needs from its operands, handled here:
- ``row_indices`` [M] int32, the *row swizzle*: a permutation of the rows, the order in which
  thread blocks take them. Sputnik's benchmarks sort rows by decreasing length, which load-balances
  ragged matrices; ``row_swizzle`` computes that order.
- CSR without padding: ``row_offsets`` [M + 1] int32 from 0 to nnz, ``column_indices`` [nnz] int32;
  ``SputnikCsr.from_csr`` trims the unused tail of a padded jsparse CSR.
- 16-byte aligned base pointers: the kernels round each row's start down to a multiple of 4 values
  and load 4 at a time (float4), masking the values of the previous row; they rely on the buffers'
  bases being aligned (as a fresh ``cudaMalloc`` is), so no padding of rows is needed, but a view
  at an unaligned offset is refused.
- C-contiguous float32 dense operands; all sizes (and K * N) within int32.

References:
  Trevor Gale, Matei Zaharia, Cliff Young, Erich Elsen. "Sparse GPU Kernels for Deep Learning",
  SC20 (arXiv 2006.10901); https://github.com/google-research/sputnik.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import os
import pathlib
from typing import Any

import numpy as np

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LIBRARY_ENV = "SPUTNIK_LIB"
DEFAULT_LIBRARY = REPO_ROOT / "build" / "sputnik" / "libsputnik_jsparse.so"
# Vector loads of float4: base pointers must be multiples of 16 bytes.
ALIGNMENT_BYTES = 16
INT32_MAX = np.iinfo(np.int32).max


def library_path() -> pathlib.Path:
  """Where the library is looked for: ``$SPUTNIK_LIB``, else ``build/sputnik/`` in the repo."""
  return pathlib.Path(os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY)


def missing_reason() -> str | None:
  """None when the library file exists, else what to do about it."""
  path = library_path()
  if path.is_file():
    return None
  return f"{path} not built (run experiments/sputnik/build.sh; see experiments/sputnik/README.md)"


@functools.lru_cache(maxsize=None)
def load(path: str | None = None) -> ctypes.CDLL:
  """The loaded library, with the argument and result types of its three functions set."""
  library = ctypes.CDLL(str(path or library_path()))
  ints, pointer = [ctypes.c_int] * 4, ctypes.c_void_p
  library.sputnik_spmm_f32.argtypes = ints + [pointer] * 7
  library.sputnik_sddmm_f32.argtypes = ints + [pointer] * 7
  library.sputnik_spmm_f32.restype = library.sputnik_sddmm_f32.restype = ctypes.c_int
  library.sputnik_error_string.argtypes = [ctypes.c_int]
  library.sputnik_error_string.restype = ctypes.c_char_p
  return library


# -- host side: the CSR arrays Sputnik reads ------------------------------------------------------
def row_swizzle(row_offsets: np.ndarray) -> np.ndarray:
  """Rows by decreasing number of nonzeros (ties by row index): int32 [M] from ``row_offsets``
  [M + 1]. Sputnik assigns rows to thread blocks in this order, so long rows start first."""
  lengths = np.diff(np.asarray(row_offsets, dtype=np.int64))
  return np.argsort(-lengths, kind="stable").astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SputnikCsr:
  """An [M, K] CSR matrix as Sputnik reads it (host NumPy arrays, no padding).

  Attributes:
    shape: (M, K).
    values: float32 [nnz].
    column_indices: int32 [nnz], in [0, K).
    row_offsets: int32 [M + 1], from 0 to nnz, nondecreasing.
    row_indices: int32 [M], the row swizzle (``row_swizzle``).
  """

  shape: tuple[int, int]
  values: np.ndarray
  column_indices: np.ndarray
  row_offsets: np.ndarray
  row_indices: np.ndarray

  @property
  def nnz(self) -> int:
    return int(self.values.shape[0])

  @classmethod
  def from_csr(cls, row_offsets: Any, col_indices: Any, values: Any,
               shape: tuple[int, int]) -> "SputnikCsr":
    """Checks and converts CSR arrays (a jsparse CSR's, possibly padded past ``row_offsets[M]``).

    Args:
      row_offsets: integer [M + 1], starting at 0, nondecreasing.
      col_indices: integer [nse >= row_offsets[M]], in [0, K) up to ``row_offsets[M]``.
      values: float32 [nse].
      shape: (M, K).
    Raises:
      ValueError / TypeError naming the argument that is wrong.
    """
    rows, cols = (int(d) for d in shape)
    if rows < 0 or cols < 0 or max(rows, cols) > INT32_MAX:
      raise ValueError(f"shape must be two sizes in [0, 2**31), got {shape}")
    row_offsets = np.asarray(row_offsets)
    col_indices = np.asarray(col_indices)
    values = np.asarray(values)
    for name, array in (("row_offsets", row_offsets), ("col_indices", col_indices)):
      if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D integer array, got {array.dtype} {array.shape}")
    if values.ndim != 1 or values.dtype != np.float32:
      raise TypeError(f"values must be a 1-D float32 array (Sputnik's SpMM/SDDMM here are "
                      f"float32), got {values.dtype} {values.shape}")
    if row_offsets.shape[0] != rows + 1:
      raise ValueError(f"row_offsets must have M + 1 = {rows + 1} entries, got "
                       f"{row_offsets.shape[0]}")
    if col_indices.shape != values.shape:
      raise ValueError(f"col_indices and values must have the same length, got "
                       f"{col_indices.shape[0]} and {values.shape[0]}")
    offsets = row_offsets.astype(np.int64)
    nnz = int(offsets[-1])
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
      raise ValueError("row_offsets must start at 0 and be nondecreasing")
    if nnz > values.shape[0] or nnz > INT32_MAX:
      raise ValueError(f"row_offsets[M] = {nnz} exceeds the {values.shape[0]} stored values")
    columns = col_indices[:nnz].astype(np.int64)
    if nnz and (columns.min() < 0 or columns.max() >= cols):
      raise ValueError(f"col_indices must lie in [0, K = {cols}), got "
                       f"[{columns.min()}, {columns.max()}]")
    return cls((rows, cols), np.ascontiguousarray(values[:nnz]), columns.astype(np.int32),
               offsets.astype(np.int32), row_swizzle(offsets))

  def entry_rows(self) -> np.ndarray:
    """int64 [nnz]: the row of each stored value (to scatter SDDMM output into a dense matrix)."""
    return np.repeat(np.arange(self.shape[0]), np.diff(self.row_offsets))


# -- device side: checked launches ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DeviceCsr:
  """A ``SputnikCsr``'s four arrays on the GPU (any objects with ``__cuda_array_interface__``,
  e.g. torch CUDA tensors made from the host arrays), with its shape and nnz."""

  shape: tuple[int, int]
  nnz: int
  values: Any
  column_indices: Any
  row_offsets: Any
  row_indices: Any


def device_pointer(name: str, array: Any, typestr: str, shape: tuple[int, ...]) -> int:
  """The device address of ``array`` after checking it is a C-contiguous CUDA array of ``typestr``
  (NumPy's '<f4', '<i4') and ``shape``, aligned for Sputnik's vector loads."""
  interface = getattr(array, "__cuda_array_interface__", None)
  if interface is None:
    raise TypeError(f"{name} must be a CUDA array (with __cuda_array_interface__), got "
                    f"{type(array).__name__}")
  if interface["typestr"] != typestr:
    raise TypeError(f"{name} must have dtype {np.dtype(typestr)}, got "
                    f"{np.dtype(interface['typestr'])}")
  if tuple(interface["shape"]) != tuple(shape):
    raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(interface['shape'])}")
  strides = interface.get("strides")
  if strides is not None:  # None means C-contiguous; a size-1 dimension's stride is irrelevant
    expected = np.dtype(typestr).itemsize * np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]
    if any(size > 1 and stride != want for size, stride, want in zip(shape, strides, expected)):
      raise ValueError(f"{name} must be C-contiguous, got strides {tuple(strides)}")
  address = int(interface["data"][0])
  if address % ALIGNMENT_BYTES:
    raise ValueError(f"{name} must start at a multiple of {ALIGNMENT_BYTES} bytes "
                     f"(Sputnik's vector loads), got address {address:#x}")
  return address


def _columns(name: str, array: Any) -> int:
  """The size of the last dimension of a 2-D CUDA array (its other checks: ``device_pointer``)."""
  shape = getattr(array, "__cuda_array_interface__", {}).get("shape", ())
  if len(shape) != 2:
    raise ValueError(f"{name} must be a 2-D CUDA array, got shape {tuple(shape)} of "
                     f"{type(array).__name__}")
  return int(shape[1])


def _csr_pointers(csr: DeviceCsr, with_values: bool) -> list[int]:
  rows = csr.shape[0]
  pointers = [device_pointer("row_indices", csr.row_indices, "<i4", (rows,))]
  if with_values:
    pointers.append(device_pointer("values", csr.values, "<f4", (csr.nnz,)))
  return pointers + [device_pointer("row_offsets", csr.row_offsets, "<i4", (rows + 1,)),
                     device_pointer("column_indices", csr.column_indices, "<i4", (csr.nnz,))]


def _int32(name: str, value: int) -> int:
  if not 0 <= value <= INT32_MAX:
    raise ValueError(f"{name} = {value} is outside Sputnik's int32 range")
  return value


class _Launch:
  """One prepared call: checked once at construction; ``__call__`` only launches (for timing)."""

  def __init__(self, function: Any, arguments: tuple, keep: tuple, out: Any):
    self._function, self._arguments, self._keep, self.out = function, arguments, keep, out
    self._library = load()

  def __call__(self) -> Any:
    code = self._function(*self._arguments)
    if code:
      message = self._library.sputnik_error_string(code).decode()
      raise RuntimeError(f"Sputnik launch failed: CUDA error {code} ({message})")
    return self.out


class Spmm(_Launch):
  """``out [M, N] = A @ dense [K, N]``, float32 row-major, on ``stream`` (a cudaStream_t as an
  int; 0: the legacy default stream). Calling it launches the kernel and returns ``out``."""

  def __init__(self, csr: DeviceCsr, dense: Any, out: Any, stream: int = 0):
    rows, cols = csr.shape
    n = _columns("dense", dense)
    dense_pointer = device_pointer("dense", dense, "<f4", (cols, n))
    out_pointer = device_pointer("out", out, "<f4", (rows, n))
    _int32("K * N", cols * n)
    _int32("M * N", rows * n)
    arguments = (rows, cols, n, csr.nnz, *_csr_pointers(csr, with_values=True), dense_pointer,
                 out_pointer, stream)
    super().__init__(load().sputnik_spmm_f32, arguments, (csr, dense), out)


class Sddmm(_Launch):
  """``out_values [nnz] = (lhs [M, D] @ rhs [K, D].T)`` at A's pattern, in A's order, float32,
  on ``stream``. Calling it launches the kernel and returns ``out_values``."""

  def __init__(self, csr: DeviceCsr, lhs: Any, rhs: Any, out_values: Any, stream: int = 0):
    rows, cols = csr.shape
    depth = _columns("lhs", lhs)
    lhs_pointer = device_pointer("lhs", lhs, "<f4", (rows, depth))
    rhs_pointer = device_pointer("rhs", rhs, "<f4", (cols, depth))
    out_pointer = device_pointer("out_values", out_values, "<f4", (csr.nnz,))
    _int32("M * D", rows * depth)
    _int32("K * D", cols * depth)
    arguments = (rows, depth, cols, csr.nnz, *_csr_pointers(csr, with_values=False), lhs_pointer,
                 rhs_pointer, out_pointer, stream)
    super().__init__(load().sputnik_sddmm_f32, arguments, (csr, lhs, rhs), out_values)
