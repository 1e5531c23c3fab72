"""Pallas GPU kernels (``pallas_kernels/``) registered as the ``cuda`` lowerings of jsparse ops.

Each submodule wraps one kernel family and registers it with ``jsparse.ops.registry`` through
``register_pallas``. With the environment variable ``JSPARSE_PALLAS_INTERPRET=1`` set before
``import jsparse``, the same kernels are also registered on the CPU in Pallas interpret mode,
reachable only when forced with ``impl="pallas"`` (``"auto"`` never picks an interpreter); the
CPU tests use this to run the public ops, their gradients and vmap through the kernels.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

from jsparse.ops import registry

INTERPRET_ENV_VAR = "JSPARSE_PALLAS_INTERPRET"


def interpret_on_cpu() -> bool:
  """Whether the Pallas kernels are also registered on the CPU, in interpret mode."""
  return os.environ.get(INTERPRET_ENV_VAR, "") not in ("", "0")


def register_pallas(op: str, format: str, fn: Callable[..., Any], *,
                    supports: registry.Supports | None = None, priority: int = 10) -> None:
  """Registers ``fn(*operands, interpret: bool, **params)`` as the ``pallas`` kernel of ``op``.

  On ``cuda`` it runs compiled (``interpret=False``); on the CPU, when ``interpret_on_cpu()``,
  with ``interpret=True`` and a negative priority so that only ``impl="pallas"`` selects it.
  """
  registry.register_kernel(op, format, platform="cuda", impl="pallas",
                           fn=functools.partial(fn, interpret=False), supports=supports,
                           priority=priority)
  if interpret_on_cpu():
    registry.register_kernel(op, format, platform="cpu", impl="pallas",
                             fn=functools.partial(fn, interpret=True), supports=supports,
                             priority=-1)


# Kernel families register themselves on import (one line each):
from jsparse._gpu import structured  # noqa: E402,F401  BSR, N:M, tiled (tensor cores)
from jsparse._gpu import attention  # noqa: E402,F401  block-sparse flash attention
from jsparse._gpu import csr  # noqa: E402,F401  CSR SpMM, SpMV, SDDMM (unstructured)
