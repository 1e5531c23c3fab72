"""C++ CPU kernels reached through ``jax.ffi``, registered with ``jsparse.ops.registry``.

The kernels live in the compiled extension ``jsparse/_cpu/_jsparse_cpu*.so``, built from
``csrc/`` when the package is installed. A source tree that was never built still imports:
``AVAILABLE`` is then False, ``IMPORT_ERROR`` says why, and jsparse uses its reference lowerings.
"""

from __future__ import annotations

import types

import jax

from jsparse._cpu import csr
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


def _register(extension: types.ModuleType) -> None:
  for target_name, capsule in extension.registrations().items():
    jax.ffi.register_ffi_target(target_name, capsule, platform="cpu")
  registry.register_kernel("spmv", "csr", platform="cpu", impl="ffi", fn=csr.csr_spmv_ffi,
                           supports=csr.csr_spmv_supports)


if AVAILABLE:
  _register(_jsparse_cpu)
