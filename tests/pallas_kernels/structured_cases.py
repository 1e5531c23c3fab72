"""Random operands for the tensor-core kernel tests (BSR, N:M, tiled) and the op-level check.

Kernels run compiled on a GPU and in interpret mode elsewhere (``csr_cases.INTERPRET``), where
unwritten outputs read back as NaN, so ``csr_cases.assert_close`` also proves every element of the
result was written.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse.ops import registry
from tests.pallas_kernels import csr_cases

INTERPRET = csr_cases.INTERPRET
# In CI (60 s for these files) the dtype sweeps run bfloat16 only (float32 runs in the edge-case
# tests); float32 and float16 sweeps run with the slow tests and on the GPU check.
VALUE_DTYPES = [pytest.param(jnp.float32, marks=pytest.mark.slow), jnp.bfloat16,
                pytest.param(jnp.float16, marks=pytest.mark.slow)]
assert_close = csr_cases.assert_close
dense_operand = csr_cases.dense_operand


def random_values(rng: np.random.Generator, shape, dtype) -> np.ndarray:
  """Magnitudes in [0.5, 1.5] with random signs (never zero), exact in ``dtype``, as float64."""
  values = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
  return np.asarray(jnp.asarray(values, dtype).astype(jnp.float32), np.float64)


def sparse_dense(rng: np.random.Generator, shape, density: float, dtype) -> np.ndarray:
  """A float64 [M, K] matrix with about ``density`` nonzeros (exact in ``dtype``)."""
  return np.where(rng.random(shape) < density, random_values(rng, shape, dtype), 0.0)


def block_sparse_dense(rng: np.random.Generator, shape, block_shape, density: float, dtype,
                       empty_block_rows=()) -> np.ndarray:
  """A float64 [M, K] matrix whose [bm, bk] blocks are kept with probability ``density``."""
  (bm, bk), (rows, cols) = block_shape, (shape[0] // block_shape[0], shape[1] // block_shape[1])
  keep = rng.random((rows, cols)) < density
  keep[list(empty_block_rows)] = False
  mask = np.repeat(np.repeat(keep, bm, axis=0), bk, axis=1)
  return np.where(mask, random_values(rng, shape, dtype), 0.0)


def tiled_matrix(dense64: np.ndarray, dtype, tile_shape, nse=None):
  """``jsparse.Tiled`` of ``dense64`` cast to ``dtype`` (exact: the values are)."""
  return jsparse.Tiled.fromdense(jnp.asarray(dense64, dtype), tile_shape=tile_shape, nse=nse)


def check_spmm(product, dense64: np.ndarray, b, b64: np.ndarray, dtype) -> None:
  """``product`` (the kernel's A @ B) against the float64 product."""
  assert jnp.asarray(product).dtype == jnp.dtype(dtype)
  assert_close(product, dense64 @ b64, dtype, np.abs(dense64) @ np.abs(b64))


def record_calls(monkeypatch, module, names, detail=None) -> list:
  """Wraps ``module.<name>`` for each of ``names``: every call appends ``name`` (or ``(name,
  detail(kwargs))``) to the returned list, then runs the original."""
  calls = []
  for name in names:
    def wrapper(*args, _name=name, _original=getattr(module, name), **kwargs):
      calls.append(_name if detail is None else (_name, detail(kwargs)))
      return _original(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)
  return calls


def record_prefill_calls(monkeypatch, module, expand_min_n: int, detail=None) -> list:
  """``record_calls`` of ``module``'s ``expand_fn`` and ``kernel_fn`` with
  ``jsparse._gpu.structured.EXPAND_MIN_N`` set to ``expand_min_n`` and jax's caches cleared (a
  shape compiled before would not lower again)."""
  from jsparse._gpu import structured
  monkeypatch.setattr(structured, "EXPAND_MIN_N", expand_min_n)
  calls = record_calls(monkeypatch, module, ("expand_fn", "kernel_fn"), detail)
  jax.clear_caches()
  return calls


def pallas_registered(op: str, format: str) -> bool:
  """Whether ``impl="pallas"`` has a kernel for ``op`` on ``format`` on this platform (the CPU
  only with ``JSPARSE_PALLAS_INTERPRET=1`` set before jsparse was imported)."""
  platform = "cuda" if jax.default_backend() == "gpu" else jax.default_backend()
  kernels = registry.registered_kernels(op, format, platform)
  return any(kernel.impl == "pallas" for kernel in kernels)  # the CPU also has ffi kernels


def assert_lowers_to_triton_for_h100(monkeypatch, fn, *operands: jax.ShapeDtypeStruct) -> None:
  """Lowers (no run) ``fn(*operands)`` through the Pallas Triton backend for CUDA on any machine,
  so CI catches what interpret mode accepts but Triton does not. Private jax 0.11.2 hook: the GPU
  description that the lowering would read from a device is given instead. Limit: this stops at
  the Triton-dialect module that JAX emits; Triton's own compile (TTIR -> TTGIR -> LLVM) runs only
  on a GPU, so an op that JAX emits but Triton cannot legalize passes here (round 2's
  ``math.ctpop`` from ``lax.population_count`` did); only the compiled GPU tests catch those.
  The emitted modules are run through the dialect's verifier."""
  gpu_info = pytest.importorskip("jax._src.pallas.triton.gpu_info")
  from jax._src.pallas.triton import pallas_call_registration
  h100 = gpu_info.get_gpu_info_from_version(gpu_info.GpuVersion.H100)
  monkeypatch.setattr(pallas_call_registration.gpu_info_lib, "get_gpu_info", lambda: h100)
  modules = []
  lower_module = pallas_call_registration.lowering.lower_jaxpr_to_triton_module

  def lower_and_keep(*args, **kwargs):
    result = lower_module(*args, **kwargs)
    modules.append(result.module)
    return result

  monkeypatch.setattr(pallas_call_registration.lowering, "lower_jaxpr_to_triton_module",
                      lower_and_keep)
  lowered = jax.jit(fn).trace(*operands).lower(lowering_platforms=("cuda",))
  from jax.experimental.pallas import triton as plgpu
  assert plgpu.CUSTOM_CALL_TARGET_NAME in lowered.as_text()
  # The verifier of the Triton dialect (operand types of its ops: round 5's inline PTX on uint32
  # passed lowering and failed to parse on the GPU).
  assert modules
  for module in modules:
    assert module.operation.verify()
