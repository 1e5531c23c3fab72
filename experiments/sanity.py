"""Cross-check of the timing methods: every available method times the same dense matmul.

The JAX loop, the JAX per-call timer, and (where importable) NumPy on the host, torch (host clock
on CPU, CUDA events on GPU) and CuPy (CUDA events) each time C = A @ B, float32, of one size. The
libraries' matmuls differ (XLA, OpenBLAS, MKL, cuBLAS), so times may differ by their speed; a
method that disagrees wildly with the others on the same library (the two JAX timers, or torch
vs CuPy on cuBLAS) points to a timing bug, not a kernel.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import timing
from experiments.machine import Machine

CONFIG = timing.TimingConfig(repeats=7, min_repeats=3, min_sample_s=0.01, max_total_s=2.0)


def shapes(machine: Machine) -> tuple[int, int, int]:
  """(M, K, N) of the checked matmul: ~1 GFLOP on CPU, ~70 GFLOP on GPU."""
  return (8192, 8192, 512) if machine.on_gpu else (2048, 2048, 128)


def cross_check(machine: Machine) -> list[dict]:
  """One record per timing method: method, library, median/p10/p90 us, GFLOP/s (or error)."""
  m, k, n = shapes(machine)
  rng = np.random.default_rng(0)
  a = rng.standard_normal((m, k), dtype=np.float32)
  b = rng.standard_normal((k, n), dtype=np.float32)
  a_dev, b_dev = jnp.asarray(a), jnp.asarray(b)
  dot = lambda x, y: jnp.dot(x, y, precision=jax.lax.Precision.HIGHEST)
  makers: list[tuple[str, Callable[[], timing.Timer]]] = [
      ("jax (XLA)", lambda: timing.JaxLoopTimer(dot, [(a_dev, b_dev)])),
      ("jax (XLA)", lambda: timing.JaxCallTimer(dot, (a_dev, b_dev))),
  ]
  if not machine.on_gpu:
    makers.append(("numpy", lambda: timing.HostTimer([lambda: a @ b])))
  makers.append(("torch", lambda: _torch_timer(a, b, machine)))
  if machine.platform == "cuda":
    makers.append(("cupy", lambda: _cupy_timer(a, b)))
  records = []
  for library, make in makers:
    try:
      timer = make()
      if timer is None:
        continue
      timer.run_once()
      measurement = timer.measure(CONFIG)
    except Exception as error:  # a broken optional library is reported, not fatal
      records.append({"library": library, "status": "error",
                      "message": f"{type(error).__name__}: {error}"[:300], "shape": [m, k, n]})
      continue
    records.append({"library": library, "status": "ok", "shape": [m, k, n],
                    "gflops": 2 * m * k * n / (measurement.median_us * 1e3),
                    **measurement.asdict()})
  return records


def _torch_timer(a: np.ndarray, b: np.ndarray, machine: Machine) -> Any:
  try:
    import torch
  except Exception:
    return None
  if machine.platform == "cuda":
    if not torch.cuda.is_available():
      return None
    ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    return timing.TorchCudaTimer([lambda: ta @ tb])
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  return timing.HostTimer([lambda: ta @ tb])


def _cupy_timer(a: np.ndarray, b: np.ndarray) -> Any:
  try:
    import cupy
  except Exception:
    return None
  ca, cb = cupy.asarray(a), cupy.asarray(b)
  return timing.CupyTimer([lambda: ca @ cb])
