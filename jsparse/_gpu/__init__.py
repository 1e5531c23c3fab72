"""Pallas GPU kernels (``pallas_kernels/``) registered as the ``cuda`` lowerings of jsparse ops.

Each submodule wraps one kernel family and registers it with ``jsparse.ops.registry`` through
``register_pallas``. With the environment variable ``JSPARSE_PALLAS_INTERPRET=1`` set before
``import jsparse``, the same kernels are also registered on the CPU in Pallas interpret mode,
reachable only when forced with ``impl="pallas"`` (``"auto"`` never picks an interpreter); the
CPU tests use this to run the public ops, their gradients and vmap through the kernels.

Ops with a Hopper (Mosaic GPU) kernel beside the Triton one (block-sparse attention, BSR SpMM)
pick between them per call from ``cuda_capability()`` and an environment variable read by
``kernel_override`` (``auto``, ``triton`` or ``mosaic``).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax

from jsparse.ops import registry

INTERPRET_ENV_VAR = "JSPARSE_PALLAS_INTERPRET"
KERNEL_CHOICES = ("auto", "triton", "mosaic")
HOPPER = (9, 0)


def interpret_on_cpu() -> bool:
  """Whether the Pallas kernels are also registered on the CPU, in interpret mode."""
  return os.environ.get(INTERPRET_ENV_VAR, "") not in ("", "0")


def kernel_override(env_var: str) -> str:
  """The environment variable ``env_var`` (``"auto"`` when unset or empty), one of
  ``KERNEL_CHOICES``."""
  choice = os.environ.get(env_var, "") or "auto"
  if choice not in KERNEL_CHOICES:
    raise ValueError(f"{env_var} must be one of {KERNEL_CHOICES}, got {choice!r}")
  return choice


def pick_kernel(env_var: str, choice: str, *, interpret: bool,
                capability: tuple[int, int] | None, mosaic_supports: Callable[[], bool | str],
                mosaic_reason: str, triton_reason: str | None = None) -> tuple[str, str]:
  """The Mosaic GPU or the Triton kernel for one call: ``("mosaic" | "triton", why)``.

  ``choice`` (``kernel_override(env_var)``) "triton" or "mosaic" forces a kernel ("mosaic" still
  needs ``mosaic_supports()``); under "auto" Triton runs when ``triton_reason`` is given (a call
  the op keeps on Triton, e.g. decoding), in interpret mode, off Hopper (``capability``, None
  without CUDA devices) and where ``mosaic_supports()`` (True or why not; called only once the
  cheap checks pass, so the Mosaic GPU module is imported only on Hopper) refuses the call.

  Raises:
    ValueError: ``choice == "mosaic"`` and ``mosaic_supports()`` refuses the call.
  """
  if choice == "triton":
    return "triton", f"{env_var}=triton"
  if choice == "mosaic":
    verdict = mosaic_supports()
    if verdict is not True:
      raise ValueError(f"{env_var}=mosaic, but the Mosaic GPU kernel does not support this "
                       f"call: {verdict}")
    return "mosaic", f"{env_var}=mosaic"
  if triton_reason is not None:
    return "triton", triton_reason
  if interpret:
    return "triton", (f"interpret mode: the Triton interpreter ({env_var}=mosaic runs the "
                      "slower Mosaic GPU one)")
  if capability is None or capability[0] != HOPPER[0]:
    return "triton", f"not a Hopper (sm_90) GPU: compute capability {capability}"
  verdict = mosaic_supports()
  if verdict is not True:
    return "triton", f"Mosaic GPU kernel refuses: {verdict}"
  return "mosaic", mosaic_reason


@functools.cache
def cuda_capability() -> tuple[int, int] | None:
  """The compute capability shared by every CUDA device JAX sees, e.g. ``(9, 0)``; None without
  CUDA devices or when they differ."""
  try:
    devices = jax.devices("cuda")
  except RuntimeError:  # no CUDA backend in this process
    return None
  capabilities = {getattr(device, "compute_capability", None) for device in devices}
  if len(capabilities) != 1 or None in capabilities:
    return None
  major, minor = str(capabilities.pop()).split(".")[:2]
  return int(major), int(minor)


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
