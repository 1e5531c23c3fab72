"""Registry of platform lowerings for jsparse primitives.

Every jsparse primitive has a reference lowering (pure ``jax.numpy``, any platform). Backends add
faster ones here, keyed by ``(op, format, platform, impl)``:

- ``op``: ``"spmm"``, ``"spmv"`` or ``"sddmm"``;
- ``format``: ``"coo"``, ``"csr"``, ``"bsr"`` or ``"nm"``;
- ``platform``: an XLA platform name, ``"cpu"`` or ``"cuda"`` (``"rocm"``, ``"tpu"`` also accepted);
- ``impl``: the backend's name, ``"ffi"`` (C++ through ``jax.ffi``) or ``"pallas"``.

A kernel is a traceable JAX function with the same operands and parameters as the primitive (it
typically calls ``jax.ffi.ffi_call`` or ``pl.pallas_call``); it is lowered with
``jax.interpreters.mlir.lower_fun``. Its optional ``supports(avals, params)`` predicate says
whether it handles a call (dtype, transpose flag, ...); under ``impl="auto"`` an unsupported call
falls back to the next kernel and finally to the reference lowering, while a forced ``impl`` that
cannot serve the call raises an error naming what is missing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

IMPLS = ("auto", "reference", "ffi", "pallas")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")

Supports = Callable[[Sequence[Any], dict], "bool | str"]


@dataclasses.dataclass(frozen=True)
class Kernel:
  """One registered lowering of one op for one format on one platform."""

  op: str
  format: str
  platform: str
  impl: str
  fn: Callable[..., Any]
  supports: Supports | None = None
  priority: int = 0

  def unsupported_reason(self, avals: Sequence[Any], params: dict) -> str | None:
    """Returns None when this kernel can serve the call, else why not."""
    if self.supports is None:
      return None
    verdict = self.supports(avals, params)
    if verdict is True:
      return None
    return verdict if isinstance(verdict, str) and verdict else "unsupported arguments"


_KERNELS: dict[tuple[str, str, str, str], Kernel] = {}


def register_kernel(op: str, format: str, *, platform: str, impl: str,
                    fn: Callable[..., Any], supports: Supports | None = None,
                    priority: int = 0) -> None:
  """Registers ``fn`` as the ``impl`` lowering of ``op`` on ``format`` for ``platform``.

  Args:
    op: ``"spmm"``, ``"spmv"`` or ``"sddmm"``.
    format: ``"coo"``, ``"csr"``, ``"bsr"`` or ``"nm"``.
    platform: ``"cpu"``, ``"cuda"``, ``"rocm"`` or ``"tpu"``.
    impl: ``"ffi"`` or ``"pallas"`` (not ``"auto"`` or ``"reference"``, which are built in).
    fn: traceable function ``fn(*operands, **params)`` returning the primitive's result.
    supports: optional ``supports(avals, params) -> True | str``; a string says why not.
    priority: under ``impl="auto"`` the supporting kernel with the highest priority wins; a
      negative priority keeps the kernel out of ``"auto"`` (it runs only when forced, as the
      Pallas kernels do on the CPU in interpret mode).
  """
  if impl in ("auto", "reference") or impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS[2:]}, got {impl!r}")
  if platform not in PLATFORMS:
    raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
  _KERNELS[(op, format, platform, impl)] = Kernel(op, format, platform, impl, fn, supports,
                                                  priority)


def registered_kernels(op: str | None = None, format: str | None = None,
                       platform: str | None = None) -> list[Kernel]:
  """Lists the registered kernels, optionally filtered."""
  return [k for k in _KERNELS.values()
          if (op is None or k.op == op) and (format is None or k.format == format)
          and (platform is None or k.platform == platform)]


def check_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
  return impl


def select_kernel(op: str, format: str, platform: str, impl: str, avals: Sequence[Any],
                  params: dict) -> Kernel | None:
  """Chooses the kernel that lowers a call; None means the reference lowering.

  Raises:
    NotImplementedError: ``impl`` names a backend that has no kernel for this call.
  """
  if impl == "reference":
    return None
  if impl == "auto":
    candidates = sorted((k for k in registered_kernels(op, format, platform) if k.priority >= 0),
                        key=lambda k: -k.priority)
    for kernel in candidates:
      if kernel.unsupported_reason(avals, params) is None:
        return kernel
    return None
  kernel = _KERNELS.get((op, format, platform, impl))
  if kernel is None:
    available = sorted(k.impl for k in registered_kernels(op, format, platform))
    raise NotImplementedError(
        f"impl={impl!r}: no {impl} kernel for {op} on {format.upper()} matrices on platform "
        f"{platform!r} (registered there: {available + ['reference']})")
  reason = kernel.unsupported_reason(avals, params)
  if reason is not None:
    raise NotImplementedError(
        f"impl={impl!r}: the {impl} kernel for {op} on {format.upper()} ({platform}) does not "
        f"support this call: {reason}")
  return kernel
