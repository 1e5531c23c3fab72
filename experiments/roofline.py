"""The machine's measured roofline, and each problem's floor under it.

Three numbers are measured on the machine at the start of a run (not taken from a data sheet):
- copy bandwidth: bytes read + written per second by a large array copy (256 MiB on CPU, 1 GiB
  on GPU). On CPU both NumPy's ``copyto`` (one core, streaming) and an XLA elementwise op are
  timed and the higher is kept; on GPU ``jnp`` (XLA) alone.
- dense matmul rate: ``jnp.dot`` of two square matrices (2048 on CPU, 8192 on GPU), float32 at
  ``Precision.HIGHEST`` and bfloat16, in GFLOP/s.
- gather bandwidth (GPU only): rows of 64 float32 (256 bytes, a CSR SpMM's 64-column tile of B)
  gathered at random from a 4096-row table (1 MiB: in the GPU's L2, not in an SM's L1) and
  summed, by a Pallas kernel that does only that (``experiments.gather_kernel``, the best of
  8, 16 and 32 rows a load; each program's 512 rows sorted, as a CSR row's columns are); bytes of
  rows gathered per second. A CSR kernel that reads a row of B for every stored entry (SpMM; a row
  of Y for SDDMM) moves nnz x N values through the caches whatever its DRAM traffic (issue 7:
  at s = 0.9, N = 128 on 4096 x 4096, 860 MB). XLA's own gather fused into a sum reached only
  1.3 TB/s on an H100, below DRAM copy. Not measured on the CPU (XLA's gather runs on one
  thread there: 2.5 GB/s on the 2-core dev machine).

A problem's floor is the larger of ``min_bytes / bandwidth`` and ``flops / rate[dtype]`` (see
``Problem.min_bytes`` and ``Problem.flops``: useful work only, 2 * nnz * N); ``binding_floor``
names it. The fraction of the roofline a line reaches is ``floor / time``: 1 means as fast as
moving the unavoidable bytes (or doing the useful flops at dense-matmul speed) allows. Dense
lines are held to the same sparse floor, so their fraction shows how far dense compute is from
the ideal sparse kernel.

The gather bandwidth is measured and recorded (``gather_floor_us``: ``Problem.gathered_bytes``
at that rate) but is not part of the floor: on an H100 (2026-11-26) the CSR SpMM kernels,
jsparse's and Sputnik's, gathered up to 2x faster than the probe (uniform 4096 x 4096, s >= 0.9:
median 1.4x), so it bounds nothing. Their rows hit in L1 more often than the probe's, for
reasons not isolated.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments import gather_kernel, timing
from experiments.problems import Problem

MEASURE_CONFIG = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.05,
                                     max_total_s=3.0)


@dataclasses.dataclass(frozen=True)
class Roofline:
  """Measured bandwidth (GB/s), dense matmul rates (GFLOP/s per dtype name) and gather
  bandwidth (GB/s of rows gathered; None where not measured)."""

  bandwidth_gbs: float
  matmul_gflops: dict
  details: dict
  gather_gbs: float | None = None

  def floors_us(self, problem: Problem) -> dict[str, float]:
    """The problem's time floors in us: "dram", "flops" and (where measured and the problem
    gathers rows) "gather", the last not a bound (module docstring)."""
    rate = self.matmul_gflops.get(problem.case.dtype, max(self.matmul_gflops.values()))
    floors = {"dram": problem.min_bytes() / (self.bandwidth_gbs * 1e3),
              "flops": problem.flops / (rate * 1e3)}
    gathered = problem.gathered_bytes()
    if self.gather_gbs and gathered:
      floors["gather"] = gathered / (self.gather_gbs * 1e3)
    return floors

  def floor_us(self, problem: Problem) -> float:
    """The binding floor: the larger of the DRAM and FLOP floors."""
    return self.record_fields(problem)["floor_us"]

  def binding_floor(self, problem: Problem) -> str:
    """Which floor ``floor_us`` is: "dram" or "flops"."""
    return self.record_fields(problem)["binding_floor"]

  def gather_floor_us(self, problem: Problem) -> float | None:
    """Rows gathered at the probe's rate, in us (None: not measured or no gather)."""
    return self.record_fields(problem)["gather_floor_us"]

  def record_fields(self, problem: Problem) -> dict:
    """``floor_us``, ``binding_floor`` and ``gather_floor_us`` of a problem, its floors
    computed once."""
    floors = self.floors_us(problem)
    binding = "dram" if floors["dram"] >= floors["flops"] else "flops"
    return {"floor_us": floors[binding], "binding_floor": binding,
            "gather_floor_us": floors.get("gather")}

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
  return Roofline(bandwidth, rates, details,
                  gather_gbs=measure_gather(details) if on_gpu else None)


GATHER_TABLE_ROWS = 4096
GATHER_ROW = 64
GATHER_STEPS = (8, 16, 32)


def measure_gather(details: dict, count: int = 1 << 22, interpret: bool = False) -> float:
  """The gather bandwidth (module docstring) in GB/s of rows gathered: the best of the probe's
  launches with ``GATHER_STEPS`` rows a load, ``count`` rows (a multiple of 512) each; notes
  each rate and the sizes in ``details``."""
  details.update(gather_rows=count, gather_table_rows=GATHER_TABLE_ROWS,
                 gather_row_bytes=GATHER_ROW * 4, gather_method="experiments.gather_kernel")
  table = jax.random.normal(jax.random.key(1), (GATHER_TABLE_ROWS, GATHER_ROW), jnp.float32)
  # Sorted within each program's 512 rows, as a CSR row's columns are (H100: 6.2 TB/s unsorted,
  # 7.0 sorted; the CSR SpMM kernels gathered up to 14-16).
  rows = jnp.sort(jax.random.randint(jax.random.key(2), (count // 512, 512), 0,
                                     GATHER_TABLE_ROWS, jnp.int32), axis=1).reshape(-1)
  rates = {}
  for step in GATHER_STEPS:
    gather = timing.JaxCallTimer(
        lambda t, r, step=step: gather_kernel.gather_sums(t, r, step=step, interpret=interpret),
        (table, rows))
    gather.run_once()
    rates[step] = _gbs(count * GATHER_ROW * 4, gather.measure(MEASURE_CONFIG))
  details["gather_gbs_by_step"] = rates
  details["gather_gbs"] = max(rates.values())
  return details["gather_gbs"]


def _gbs(num_bytes: int, measurement: timing.Measurement) -> float:
  return num_bytes / (measurement.median_us * 1e3)
