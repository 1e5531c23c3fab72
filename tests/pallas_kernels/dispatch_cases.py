"""Shared by the dispatch tests of the ops with a Mosaic GPU and a Triton kernel."""

from __future__ import annotations

import pytest

HOPPER, AMPERE = (9, 0), (8, 0)


def pretend_cuda_device(monkeypatch, wrapper, capability, env_var: str) -> None:
  """Lets a test lower an op for CUDA on any host (no PTX is generated) as if every CUDA device
  had ``capability``: the Triton lowering gets an H100's description, ``wrapper``'s
  ``cuda_capability`` returns ``capability``, and the override ``env_var`` is unset. Skips when
  this jax has no GPU description to lower the Triton kernel against."""
  gpu_info = pytest.importorskip("jax._src.pallas.triton.gpu_info")
  if not hasattr(gpu_info, "get_gpu_info_from_version"):
    pytest.skip("this jax has no GPU description to lower the Triton kernel against")
  monkeypatch.setattr(gpu_info, "get_gpu_info",
                      lambda: gpu_info.get_gpu_info_from_version(gpu_info.GpuVersion.H100))
  monkeypatch.setattr(wrapper, "cuda_capability", lambda: capability)
  monkeypatch.delenv(env_var, raising=False)
