"""C++ CPU kernels reached through ``jax.ffi``, registered with ``jsparse.ops.registry``.

The kernels live in the compiled extension ``jsparse/_cpu/_jsparse_cpu*.so``, built from
``csrc/`` when the package is installed. A source tree that was never built still imports:
``AVAILABLE`` is then False, ``IMPORT_ERROR`` says why, and jsparse uses its reference lowerings.
"""

from __future__ import annotations

import types

import jax

from jsparse._cpu import sddmm, spmm
from jsparse.ops import registry

try:
  import jsparse._cpu._jsparse_cpu as _jsparse_cpu
except ImportError as import_error:
  _jsparse_cpu = None
  IMPORT_ERROR: str | None = (
      f"{type(import_error).__name__}: {import_error} (looked in {__path__[0]}; "
      "`pip install .` builds it)")
else:
  IMPORT_ERROR = None

AVAILABLE: bool = _jsparse_cpu is not None


FORMATS = ("coo", "csr", "bsr", "nm")
# Formats with an SpMM / SpMV kernel only (A @ B; their SDDMM and A.T @ B run the reference).
SPMM_ONLY_FORMATS = ("tiled",)


def _register(extension: types.ModuleType) -> None:
  for target_name, capsule in extension.registrations().items():
    jax.ffi.register_ffi_target(target_name, capsule, platform="cpu")
  for fmt in FORMATS + SPMM_ONLY_FORMATS:
    registry.register_kernel("spmm", fmt, platform="cpu", impl="ffi", fn=spmm.spmm_ffi,
                             supports=spmm.spmm_supports)
    registry.register_kernel("spmv", fmt, platform="cpu", impl="ffi", fn=spmm.spmv_ffi,
                             supports=spmm.spmv_supports)
  for fmt in FORMATS:
    registry.register_kernel("sddmm", fmt, platform="cpu", impl="ffi", fn=sddmm.sddmm_ffi,
                             supports=sddmm.sddmm_supports)


def vector_isa() -> str | None:
  """The vector instruction set the kernels run with on this CPU (None without the extension)."""
  return _jsparse_cpu.vector_isa() if AVAILABLE else None


if AVAILABLE:
  _register(_jsparse_cpu)
