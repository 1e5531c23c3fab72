"""The lines a case compares: every way of computing the op that this machine offers.

A line is a small class: ``name``; ``available(machine)`` (None, or why it cannot run at all
here: a missing library, the wrong platform); ``applies(case, machine)`` (None, or why it does not
apply to a case: a format, op or dtype it has no path for; such cases are "n/a", not errors);
``prepare(problem, copies, machine) -> Prepared`` (operands placed where the line computes, a
timer from ``experiments/timing.py``, and how to read its output back as a dense NumPy array).

Lines (``all_lines``):
- ``jsparse-reference|ffi|pallas|auto``: ``jsparse.spmm/spmv/sddmm(..., impl=...)`` on the case's
  format. ``ffi``/``pallas`` apply where the registry has such a kernel for (op, format, platform);
  ``auto`` applies where some kernel beyond the reference is registered (elsewhere it is the
  reference, timed once as such).
- ``dense-fp32`` (``jnp.dot`` at ``Precision.HIGHEST``) and ``dense-bf16``: the dense baseline on
  A with its zeros; SDDMM densely is ``where(mask, X @ Y.T, 0)``. Their time does not depend on
  the pattern, so each is measured once per (op, shape, N) and shared by the cases alike.
- ``dense-numpy-fp32`` (CPU runs only): the same dense product in NumPy (``np.matmul`` of
  float32 arrays, its BLAS), timed on the host like SciPy and torch; shared like ``dense-fp32``.
- ``jax-bcsr`` / ``jax-bcoo``: ``jax.experimental.sparse`` with its default lowering (a gather
  and a segment sum); ``jax-bcsr-cusparse`` / ``jax-bcoo-cusparse`` (CUDA only): the same objects
  compiled with ``jax_bcoo_cusparse_lowering`` on, which lowers float32/float64 products to
  cuSPARSE (other dtypes silently take the default path).
- ``scipy-csr`` / ``scipy-bsr`` (CPU runs only): SciPy's compiled CSR / BSR products, float32.
- ``torch-csr``: ``torch.sparse_csr_tensor @ B`` (MKL on CPU, cuSPARSE on CUDA), when torch
  imports; ``torch-sampled-addmm``: ``torch.sparse.sampled_addmm`` SDDMM on CSR;
  ``torch-2:4``: ``torch.sparse.to_sparse_semi_structured`` (CUDA sparse tensor cores, bfloat16,
  2:4 ``nm`` cases).
- ``cupy-csr``: ``cupyx.scipy.sparse.csr_matrix @ B`` (cuSPARSE), when cupy imports on a GPU run.
- ``sputnik`` / ``sputnik-sddmm`` (CUDA, float32 csr): Sputnik's SpMM / SDDMM (Gale et al. SC20),
  built from its public source by ``experiments/sputnik/build.sh``; available once built.
torch and cupy are imported only by their lines, never required.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import warnings
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

import jsparse
from jsparse.ops import registry

from experiments import timing
from experiments.grid import Case
from experiments.machine import Machine
from experiments.problems import Problem


class NotApplicable(Exception):
  """Raised by ``prepare`` when the line turns out not to serve the case (e.g. a forced jsparse
  backend refuses the call): the case is marked "n/a" for the line, not "error"."""


@dataclasses.dataclass
class Prepared:
  """A line ready to run one case.

  Attributes:
    timer: runs and times the op.
    to_dense: the line's output -> dense NumPy array (the layout of ``check.reference``).
    notes: what exactly ran, when it is worth recording (e.g. the kernel ``auto`` chose).
  """

  timer: timing.Timer
  to_dense: Callable[[Any], np.ndarray]
  notes: str = ""


class Line:
  """Base class; see the module docstring for the contract."""

  name: str = "abstract"
  framework: str = "jax"
  # None: the case's dtype; else the dtype the line always computes in.
  compute_dtype: str | None = None
  # May run float32 products in TF32 on GPU (check tolerance 1e-2 there).
  tf32: bool = False
  # Materialises a gather of nnz x N values (checked against the memory limit).
  gathers: bool = False
  # The time does not depend on the pattern or format: measured once per (op, shape, N).
  shared: bool = False
  description: str = ""

  def available(self, machine: Machine) -> str | None:
    return None

  def applies(self, case: Case, machine: Machine) -> str | None:
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    raise NotImplementedError

  def dtype_for(self, case: Case) -> str:
    return self.compute_dtype or case.dtype

  def working_set_bytes(self, problem: Problem) -> int:
    """Bytes one run touches (for the cache-rotation decision)."""
    return problem.min_bytes()


# -- helpers -------------------------------------------------------------------------------------
def _fresh(tree: Any) -> Any:
  """A copy of a pytree of arrays in new device buffers (so copies do not alias)."""
  return jax.tree_util.tree_map(lambda leaf: jnp.array(np.asarray(leaf)), tree)


def _as_numpy(out: Any) -> np.ndarray:
  return np.asarray(jnp.asarray(out).astype(jnp.float32))


def _import(module: str) -> Any | None:
  try:
    return importlib.import_module(module)
  except Exception:  # absent or broken installs both mean "not available"
    return None


def _missing(module: str) -> str | None:
  return None if _import(module) is not None else f"{module} is not importable"


# -- jsparse -------------------------------------------------------------------------------------
# SDDMM lines return the sampled values only, as Sputnik's and jax.experimental.sparse's do:
# the pattern's indices, passed through into a result CSR, would be copied when a one-op program
# returns them (two device copies, 2.1-7.4 us on the DLMC matrices: as long as the kernel).
JSPARSE_OPS = {
    "spmm": lambda impl: lambda A, B: jsparse.spmm(A, B, impl=impl),
    "spmv": lambda impl: lambda A, x: jsparse.spmv(A, x, impl=impl),
    "sddmm": lambda impl: lambda A, X, Y: jsparse.sddmm(A, X, Y, impl=impl).data,
}


def pattern_values_to_dense(pattern: Any, values: Any) -> np.ndarray:
  """float32 ``[M, N]``: the matrix with ``pattern``'s structure (any jsparse format) and
  ``values`` (its ``data``, as ``jsparse.sddmm`` computes it)."""
  return _as_numpy(pattern.with_data(jnp.asarray(values)).todense())


class JsparseLine(Line):
  """``jsparse.<op>(A, ..., impl=impl)`` on the case's format."""

  tf32 = True  # the BSR and N:M reference lowerings contain dense products

  def __init__(self, impl: str):
    self.impl = impl
    self.name = f"jsparse-{impl}"
    self.gathers = impl in ("reference", "auto")
    self.description = f"jsparse, impl={impl!r}"

  def applies(self, case: Case, machine: Machine) -> str | None:
    if self.impl == "reference":
      return None
    kernels = registry.registered_kernels(case.op, case.format, machine.platform)
    if self.impl == "auto":
      return None if kernels else "auto resolves to the reference here"
    if not any(k.impl == self.impl for k in kernels):
      return f"no {self.impl} kernel for {case.op} on {case.format} ({machine.platform})"
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    fn = JSPARSE_OPS[problem.case.op](self.impl)
    sets = [_fresh((problem.matrix, *problem.operands)) for _ in range(copies)]
    try:
      timer = timing.JaxLoopTimer(fn, sets)
    except NotImplementedError as refusal:  # a forced backend that does not serve this call
      raise NotApplicable(str(refusal)) from refusal
    to_dense = (functools.partial(pattern_values_to_dense, problem.matrix)
                if problem.case.op == "sddmm" else _as_numpy)
    return Prepared(timer, to_dense, _auto_choice(problem, machine) if self.impl == "auto" else "")


def _auto_choice(problem: Problem, machine: Machine) -> str:
  names = sorted(k.impl for k in registry.registered_kernels(problem.case.op, problem.case.format,
                                                             machine.platform))
  return f"auto among {names + ['reference']}"


# -- dense ---------------------------------------------------------------------------------------
class DenseLine(Line):
  """The dense baseline: A with its zeros, one ``jnp.dot`` (SDDMM: masked ``X @ Y.T``)."""

  shared = True
  tf32 = True

  def __init__(self, dtype: str):
    self.compute_dtype = dtype
    self.name = {"float32": "dense-fp32", "bfloat16": "dense-bf16"}[dtype]
    self.precision = jax.lax.Precision.HIGHEST if dtype == "float32" else None
    self.description = f"jnp.dot in {dtype}" + (" at Precision.HIGHEST" if self.precision else "")

  def working_set_bytes(self, problem: Problem) -> int:
    itemsize = jnp.dtype(self.compute_dtype).itemsize
    rows, cols = problem.shape
    out = rows * cols if problem.case.op == "sddmm" else rows * problem.case.n
    return (rows * cols + sum(op.size for op in problem.operands) + out) * itemsize

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    dtype = jnp.dtype(self.compute_dtype)
    dense = problem.dense_matrix().astype(dtype)
    operands = tuple(op.astype(dtype) for op in problem.operands)
    precision = self.precision
    if problem.case.op == "sddmm":
      def fn(mask, X, Y):
        return jnp.where(mask, jnp.dot(X, Y.T, precision=precision), jnp.zeros((), X.dtype))
      first = dense != 0
    else:
      def fn(A, B):
        return jnp.dot(A, B, precision=precision)
      first = dense
    sets = [_fresh((first, *operands)) for _ in range(copies)]
    return Prepared(timing.JaxLoopTimer(fn, sets), _as_numpy)


class NumpyDenseLine(Line):
  """The dense baseline in NumPy on the host: ``A @ B`` in float32 (SDDMM: masked ``X @ Y.T``)."""

  name = "dense-numpy-fp32"
  framework = "numpy"
  compute_dtype = "float32"
  shared = True
  description = "np.matmul in float32 (host BLAS)"

  def available(self, machine: Machine) -> str | None:
    return "host-CPU line; skipped on GPU runs" if machine.on_gpu else None

  def working_set_bytes(self, problem: Problem) -> int:
    return DenseLine("float32").working_set_bytes(problem)

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    dense = problem.dense_matrix().astype(np.float32)
    operands = tuple(np.asarray(op, np.float32) for op in problem.operands)
    calls = []
    for _ in range(copies):
      A, args = dense.copy(), tuple(op.copy() for op in operands)
      if problem.case.op == "sddmm":
        mask = A != 0
        calls.append(lambda mask=mask, X=args[0], Y=args[1]:
                     np.where(mask, np.matmul(X, Y.T), np.float32(0)))
      else:
        calls.append(lambda A=A, B=args[0]: np.matmul(A, B))
    return Prepared(timing.HostTimer(calls), lambda out: np.asarray(out, np.float32))


# -- jax.experimental.sparse ---------------------------------------------------------------------
@contextlib.contextmanager
def _cusparse_lowering(enabled: bool) -> Iterator[None]:
  """Sets ``jax_bcoo_cusparse_lowering`` while tracing and compiling, then restores it."""
  previous = jax.config.jax_bcoo_cusparse_lowering
  jax.config.update("jax_bcoo_cusparse_lowering", enabled)
  try:
    yield
  finally:
    jax.config.update("jax_bcoo_cusparse_lowering", previous)


class JaxSparseLine(Line):
  """``jax.experimental.sparse`` BCSR (csr cases) or BCOO (coo cases) times a dense operand.

  BCOO also runs SDDMM, as ``bcoo_dot_general_sampled(X, Y, indices)`` contracting the embedding
  dimension of both (X @ Y.T at the pattern), which has no cuSPARSE path.
  """

  tf32 = True

  def __init__(self, container: str, cusparse: bool):
    self.container = container
    self.cusparse = cusparse
    self.format = {"bcsr": "csr", "bcoo": "coo"}[container]
    self.name = f"jax-{container}" + ("-cusparse" if cusparse else "")
    self.gathers = not cusparse
    self.description = (f"jax.experimental.sparse.{container.upper()} @ dense, "
                        + ("jax_bcoo_cusparse_lowering=True" if cusparse else "default lowering"))

  def available(self, machine: Machine) -> str | None:
    if self.cusparse and machine.platform != "cuda":
      return "cuSPARSE lowering needs a CUDA GPU"
    return None

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.format != self.format:
      return f"{self.container} serves {self.format} cases"
    if case.op == "sddmm" and (self.container != "bcoo" or self.cusparse):
      return "no SDDMM path"
    if self.cusparse and case.dtype != "float32":
      return (f"jax's cuSPARSE lowering has no {case.dtype} (it falls back to the default "
              f"lowering, which is the jax-{self.container} line)")
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    from jax.experimental import sparse
    matrix = problem.matrix
    if self.container == "bcsr":
      arrays = (matrix.data, matrix.col_indices, matrix.row_offsets)
      build = lambda arrays: sparse.BCSR(arrays, shape=matrix.shape, indices_sorted=True,
                                         unique_indices=True)
    else:
      arrays = (matrix.data, jnp.stack([matrix.row_indices, matrix.col_indices], axis=1))
      build = lambda arrays: sparse.BCOO(arrays, shape=matrix.shape, indices_sorted=True,
                                         unique_indices=True)
    sets = [(build(_fresh(arrays)), *_fresh(problem.operands)) for _ in range(copies)]
    context = functools.partial(_cusparse_lowering, self.cusparse)
    if problem.case.op != "sddmm":
      return Prepared(timing.JaxLoopTimer(lambda A, B: A @ B, sets, context), _as_numpy)

    def sampled(A, X, Y):
      return sparse.bcoo_dot_general_sampled(X, Y, A.indices,
                                             dimension_numbers=(([1], [1]), ([], [])))

    indices = np.asarray(arrays[1])

    def to_dense(values: Any) -> np.ndarray:
      out = np.zeros(matrix.shape, np.float32)
      out[indices[:, 0], indices[:, 1]] = _as_numpy(values)
      return out
    return Prepared(timing.JaxLoopTimer(sampled, sets, context), to_dense)


# -- SciPy ---------------------------------------------------------------------------------------
class ScipyLine(Line):
  """``scipy.sparse.<format>_array @ B`` (compiled sparsetools), float32 on the host CPU."""

  framework = "scipy"

  def __init__(self, format: str):
    self.format = format
    self.name = f"scipy-{format}"
    self.description = f"scipy.sparse.{format}_array @ dense (host, one thread)"

  def available(self, machine: Machine) -> str | None:
    if machine.on_gpu:
      return "host-CPU line; skipped on GPU runs"
    return _missing("scipy")

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.format != self.format:
      return f"serves {self.format} cases"
    if case.op == "sddmm":
      return "SciPy has no SDDMM"
    if case.dtype != "float32":
      return "SciPy sparse has no bfloat16"
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    matrix = problem.matrix.to_scipy()
    if self.format == "bsr":
      matrix = matrix.tobsr(blocksize=problem.matrix.block_shape)
    calls = []
    for _ in range(copies):
      A = matrix.copy()
      B = problem.operands[0].copy()
      calls.append(lambda A=A, B=B: A @ B)
    return Prepared(timing.HostTimer(calls), lambda out: np.asarray(out, np.float32))


# -- torch ---------------------------------------------------------------------------------------
TORCH_DTYPES = {"float32": "float32", "bfloat16": "bfloat16"}


def _torch_device(machine: Machine) -> str:
  torch = _import("torch")
  return "cuda" if machine.platform == "cuda" and torch.cuda.is_available() else "cpu"


def _to_torch(array: np.ndarray, device: str, dtype: str | None = None) -> Any:
  """NumPy (bfloat16 included, through float32: exact) -> torch on ``device``."""
  import torch
  array = np.array(array)  # a writable, contiguous copy (torch warns on read-only memory)
  if jnp.issubdtype(array.dtype, jnp.floating):  # bfloat16 (ml_dtypes) is kind "V", not "f"
    target = getattr(torch, TORCH_DTYPES[dtype or str(array.dtype)])
    return torch.from_numpy(array.astype(np.float32)).to(device, target)
  return torch.from_numpy(array).to(device)


def _torch_timer(machine: Machine, calls: list) -> timing.Timer:
  if _torch_device(machine) == "cuda":
    return timing.TorchCudaTimer(calls)
  return timing.HostTimer(calls)


def _torch_numpy(out: Any) -> np.ndarray:
  if out.layout != _import("torch").strided:
    out = out.to_dense()
  return out.float().cpu().numpy()


class TorchLine(Line):
  """Base of the torch lines: available when torch imports (and sees the GPU on GPU runs)."""

  framework = "torch"

  def available(self, machine: Machine) -> str | None:
    torch = _import("torch")
    if torch is None:
      return "torch is not importable"
    if machine.on_gpu and (machine.platform != "cuda" or not torch.cuda.is_available()):
      return "torch does not see a CUDA GPU"
    return None

  def _csr(self, problem: Problem, device: str) -> Any:
    import torch
    csr = problem.matrix.tocsr()
    end = int(csr.row_offsets[-1])
    with warnings.catch_warnings():  # "beta state" and "invariant checks disabled" notices
      warnings.simplefilter("ignore", UserWarning)
      return torch.sparse_csr_tensor(
          _to_torch(np.asarray(csr.row_offsets), device),
          _to_torch(np.asarray(csr.col_indices)[:end], device),
          _to_torch(np.asarray(csr.data)[:end], device, problem.case.dtype), size=csr.shape)


class TorchCsrLine(TorchLine):
  name = "torch-csr"
  description = "torch.sparse_csr_tensor @ dense (MKL on CPU, cuSPARSE on CUDA)"

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.format != "csr":
      return "serves csr cases"
    return "see torch-sampled-addmm" if case.op == "sddmm" else None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    device = _torch_device(machine)
    calls = []
    for _ in range(copies):
      A = self._csr(problem, device)
      B = _to_torch(problem.operands[0], device, problem.case.dtype)
      calls.append(lambda A=A, B=B: A @ B)
    return Prepared(_torch_timer(machine, calls), _torch_numpy, f"torch on {device}")


class TorchSampledAddmmLine(TorchLine):
  name = "torch-sampled-addmm"
  description = "torch.sparse.sampled_addmm(A_csr, X, Y.T, beta=0): SDDMM on CSR"

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.op != "sddmm" or case.format != "csr":
      return "SDDMM on csr only"
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    import torch
    device = _torch_device(machine)
    calls = []
    for _ in range(copies):
      pattern = self._csr(problem, device)
      X = _to_torch(problem.operands[0], device, problem.case.dtype)
      Y_t = _to_torch(problem.operands[1].T, device, problem.case.dtype)
      calls.append(lambda A=pattern, X=X, Y_t=Y_t: torch.sparse.sampled_addmm(A, X, Y_t,
                                                                               beta=0.0))
    return Prepared(_torch_timer(machine, calls), _torch_numpy, f"torch on {device}")


class SputnikLine(TorchLine):
  """Base of the Sputnik lines (Gale et al., SC20, built from its public source by
  ``experiments/sputnik/build.sh``): float32 CSR on CUDA, operands in torch CUDA tensors, launched
  through ctypes on torch's current stream and timed with CUDA events like the torch lines. Rows
  run longest first (Sputnik's row swizzle); outputs start as NaN, so an entry the kernel does not
  write fails the check."""

  framework = "sputnik"
  op = "abstract"

  def available(self, machine: Machine) -> str | None:
    if machine.platform != "cuda":
      return "Sputnik's kernels need a CUDA GPU"
    reason = super().available(machine)
    if reason is not None:
      return reason
    from experiments.sputnik import binding
    reason = binding.missing_reason()
    if reason is not None:
      return reason
    try:
      binding.load()
    except OSError as error:
      return f"loading {binding.library_path()} failed: {error}"
    return None

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.op != self.op or case.format != "csr":
      return f"{self.op} on csr only"
    if case.dtype != "float32":
      return "Sputnik's kernels here are float32 (its half path is float16, not bfloat16)"
    return None

  @staticmethod
  def _host_csr(problem: Problem) -> Any:
    """A's CSR as Sputnik reads it (``binding.SputnikCsr``: unpadded, int32, row swizzle)."""
    from experiments.sputnik import binding
    csr = problem.matrix.tocsr()
    return binding.SputnikCsr.from_csr(csr.row_offsets, csr.col_indices, csr.data, csr.shape)

  @staticmethod
  def _device_csr(host: Any) -> Any:
    """A ``binding.DeviceCsr`` of fresh torch CUDA tensors (one per operand copy)."""
    from experiments.sputnik import binding
    arrays = (host.values, host.column_indices, host.row_offsets, host.row_indices)
    return binding.DeviceCsr(host.shape, host.nnz, *(_to_torch(a, "cuda") for a in arrays))

  def _launch(self, problem: Problem, host: Any, stream: int) -> Any:
    """One ``binding.Spmm`` / ``binding.Sddmm`` on fresh operands and a NaN-filled output."""
    raise NotImplementedError

  def _to_dense(self, host: Any) -> Callable[[Any], np.ndarray]:
    raise NotImplementedError

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    import torch
    stream = torch.cuda.current_stream().cuda_stream
    host = self._host_csr(problem)
    calls = [self._launch(problem, host, stream) for _ in range(copies)]
    return Prepared(timing.TorchCudaTimer(calls), self._to_dense(host),
                    "row swizzle: longest rows first")


class SputnikSpmmLine(SputnikLine):
  name = "sputnik"
  op = "spmm"
  description = "Sputnik CudaSpmm (Gale et al. SC20), float32 CSR @ dense, built for this GPU"

  def _launch(self, problem: Problem, host: Any, stream: int) -> Any:
    import torch
    from experiments.sputnik import binding
    dense = _to_torch(problem.operands[0], "cuda", "float32")
    out = torch.full((problem.shape[0], problem.case.n), float("nan"), device="cuda",
                     dtype=torch.float32)
    return binding.Spmm(self._device_csr(host), dense, out, stream)

  def _to_dense(self, host: Any) -> Callable[[Any], np.ndarray]:
    return _torch_numpy


class SputnikSddmmLine(SputnikLine):
  name = "sputnik-sddmm"
  op = "sddmm"
  description = "Sputnik CudaSddmm (Gale et al. SC20), float32, X @ Y.T at a CSR pattern"

  def _launch(self, problem: Problem, host: Any, stream: int) -> Any:
    import torch
    from experiments.sputnik import binding
    lhs, rhs = (_to_torch(operand, "cuda", "float32") for operand in problem.operands)
    out = torch.full((host.nnz,), float("nan"), device="cuda", dtype=torch.float32)
    return binding.Sddmm(self._device_csr(host), lhs, rhs, out, stream)

  def _to_dense(self, host: Any) -> Callable[[Any], np.ndarray]:
    rows, columns = host.entry_rows(), host.column_indices

    def to_dense(values: Any) -> np.ndarray:
      out = np.zeros(host.shape, np.float32)
      out[rows, columns] = _torch_numpy(values)
      return out
    return to_dense


class TorchSemiStructuredLine(TorchLine):
  name = "torch-2:4"
  description = "torch.sparse.to_sparse_semi_structured(A) @ B: 2:4 sparse tensor cores (CUDA)"

  def available(self, machine: Machine) -> str | None:
    if machine.platform != "cuda":
      return "2:4 sparse tensor cores need a CUDA GPU"
    return super().available(machine)

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.format != "nm" or case.op != "spmm":
      return "SpMM on 2:4 nm cases only"
    if case.dtype != "bfloat16":
      return "semi-structured sparsity runs float16 / bfloat16 here"
    return None

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    import torch
    if (problem.matrix.n, problem.matrix.m) != (2, 4):
      raise NotApplicable(f"pattern is {problem.matrix.n}:{problem.matrix.m}, not 2:4")
    calls = []
    for _ in range(copies):
      A = torch.sparse.to_sparse_semi_structured(
          _to_torch(problem.dense_matrix(), "cuda", problem.case.dtype))
      B = _to_torch(problem.operands[0], "cuda", problem.case.dtype)
      calls.append(lambda A=A, B=B: torch.mm(A, B))
    return Prepared(timing.TorchCudaTimer(calls), _torch_numpy)


# -- CuPy ----------------------------------------------------------------------------------------
class CupyCsrLine(Line):
  name = "cupy-csr"
  framework = "cupy"
  description = "cupyx.scipy.sparse.csr_matrix @ dense (cuSPARSE SpMM / SpMV)"

  def available(self, machine: Machine) -> str | None:
    if machine.platform != "cuda":
      return "CuPy runs on CUDA GPUs"
    return _missing("cupyx.scipy.sparse")

  def applies(self, case: Case, machine: Machine) -> str | None:
    if case.format != "csr" or case.op == "sddmm":
      return "SpMM / SpMV on csr only"
    return None if case.dtype == "float32" else "cuSPARSE through CuPy has no bfloat16"

  def prepare(self, problem: Problem, copies: int, machine: Machine) -> Prepared:
    import cupy
    from cupyx.scipy import sparse as cupy_sparse
    csr = problem.matrix.to_scipy()
    calls = []
    for _ in range(copies):
      A = cupy_sparse.csr_matrix((cupy.asarray(csr.data), cupy.asarray(csr.indices),
                                  cupy.asarray(csr.indptr)), shape=csr.shape)
      B = cupy.asarray(problem.operands[0])
      calls.append(lambda A=A, B=B: A @ B)
    return Prepared(timing.CupyTimer(calls), lambda out: cupy.asnumpy(out).astype(np.float32))


def all_lines() -> list[Line]:
  """Every line, in table order (baselines first)."""
  return [
      DenseLine("float32"), DenseLine("bfloat16"), NumpyDenseLine(),
      *(JsparseLine(impl) for impl in ("reference", "ffi", "pallas", "auto")),
      JaxSparseLine("bcsr", cusparse=False), JaxSparseLine("bcoo", cusparse=False),
      JaxSparseLine("bcsr", cusparse=True), JaxSparseLine("bcoo", cusparse=True),
      ScipyLine("csr"), ScipyLine("bsr"),
      TorchCsrLine(), TorchSampledAddmmLine(), TorchSemiStructuredLine(),
      SputnikSpmmLine(), SputnikSddmmLine(),
      CupyCsrLine(),
  ]


BASELINE = "dense-fp32"
