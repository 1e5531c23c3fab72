"""The machine's measured roofline, and each problem's floor under it.

Two numbers are measured on the machine at the start of a run (not taken from a data sheet):
- copy bandwidth: bytes read + written per second by a large array copy (256 MiB on CPU, 1 GiB
  on GPU). On CPU both NumPy's ``copyto`` (one core, streaming) and an XLA elementwise op are
  timed and the higher is kept; on GPU ``jnp`` (XLA) alone.
- dense matmul rate: ``jnp.dot`` of two square matrices (2048 on CPU, 8192 on GPU), float32 at
  ``Precision.HIGHEST`` and bfloat16, in GFLOP/s.

A problem's floor is ``max(min_bytes / bandwidth, flops / rate[dtype])`` (see
``Problem.min_bytes`` and ``Problem.flops``: useful work only, 2 * nnz * N). The fraction of the
roofline a line reaches is ``floor / time``: 1 means as fast as moving the unavoidable bytes (or
doing the useful flops at dense-matmul speed) allows. Dense lines are held to the same sparse
floor, so their fraction shows how far dense compute is from the ideal sparse kernel.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import timing
from experiments.problems import Problem

MEASURE_CONFIG = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.05,
                                     max_total_s=3.0)


@dataclasses.dataclass(frozen=True)
class Roofline:
  """Measured bandwidth (GB/s) and dense matmul rates (GFLOP/s per dtype name)."""

  bandwidth_gbs: float
  matmul_gflops: dict
  details: dict

  def floor_us(self, problem: Problem) -> float:
    rate = self.matmul_gflops.get(problem.case.dtype, max(self.matmul_gflops.values()))
    return max(problem.min_bytes() / (self.bandwidth_gbs * 1e3), problem.flops / (rate * 1e3))

  def asdict(self) -> dict:
    return dataclasses.asdict(self)


def measure(on_gpu: bool) -> Roofline:
  copy_bytes = (1 << 30) if on_gpu else (1 << 28)
  details = {"copy_bytes": copy_bytes}
  source = jnp.ones(copy_bytes // 4, jnp.float32)
  # x * 1 is not folded away for floats; the output is a fresh buffer: one read, one write.
  scale = timing.JaxCallTimer(lambda x: x * jnp.float32(1.0001), (source,))
  scale.run_once()
  details["xla_copy_gbs"] = _gbs(2 * copy_bytes, scale.measure(MEASURE_CONFIG))
  del source, scale
  bandwidth = details["xla_copy_gbs"]
  if not on_gpu:
    host_source = np.ones(copy_bytes // 4, np.float32)
    host_target = np.empty_like(host_source)
    copy = timing.HostTimer([lambda: np.copyto(host_target, host_source)])
    copy.run_once()
    details["numpy_copy_gbs"] = _gbs(2 * copy_bytes, copy.measure(MEASURE_CONFIG))
    bandwidth = max(bandwidth, details["numpy_copy_gbs"])

  size = 8192 if on_gpu else 2048
  details["matmul_size"] = size
  rates = {}
  for name, precision in (("float32", jax.lax.Precision.HIGHEST), ("bfloat16", None)):
    # Random operands: a product of constants (or zeros) can run faster than real data.
    a = jax.random.normal(jax.random.key(0), (size, size), name)
    dot = timing.JaxCallTimer(lambda x, y, p=precision: jnp.dot(x, y, precision=p), (a, a))
    dot.run_once()
    rates[name] = 2 * size**3 / (dot.measure(MEASURE_CONFIG).median_us * 1e3)
  return Roofline(bandwidth, rates, details)


def _gbs(num_bytes: int, measurement: timing.Measurement) -> float:
  return num_bytes / (measurement.median_us * 1e3)
