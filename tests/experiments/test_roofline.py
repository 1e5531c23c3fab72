"""experiments/roofline.py: the three floors (DRAM bytes, FLOPs, rows gathered) and which binds."""

import pytest

from experiments import grid, problems, roofline


def _problem(op="spmm", fmt="csr", n=128):
  return problems.build_problem(grid.Case(op, fmt, "uniform/256x256", 0.9, n, "float32"))


def test_floors_are_bytes_flops_and_rows_gathered_over_their_rates():
  problem = _problem()
  roof = roofline.Roofline(bandwidth_gbs=10.0, matmul_gflops={"float32": 100.0}, details={},
                           gather_gbs=20.0)
  floors = roof.floors_us(problem)
  assert problem.gathered_bytes() == problem.nnz * 128 * 4
  assert floors == pytest.approx({"dram": problem.min_bytes() / 10e3,
                                  "flops": problem.flops / 100e3,
                                  "gather": problem.gathered_bytes() / 20e3})
  assert roof.gather_floor_us(problem) == pytest.approx(floors["gather"])
  assert roof.floor_us(problem) == pytest.approx(max(floors["dram"], floors["flops"]))
  assert roof.binding_floor(problem) == ("dram" if floors["dram"] > floors["flops"]
                                         else "flops")


def test_the_gather_rate_is_recorded_but_not_a_floor():
  # Kernels gathered faster than the probe on the H100, so it bounds nothing.
  problem = _problem()
  slow_gather = roofline.Roofline(1e6, {"float32": 1e9}, {}, gather_gbs=1.0)
  assert slow_gather.gather_floor_us(problem) == pytest.approx(problem.gathered_bytes() / 1e3)
  assert slow_gather.floor_us(problem) < slow_gather.gather_floor_us(problem)
  assert slow_gather.binding_floor(problem) in ("dram", "flops")


def test_no_gather_floor_unmeasured_or_for_tiled_formats():
  unmeasured = roofline.Roofline(10.0, {"float32": 100.0}, {})
  assert set(unmeasured.floors_us(_problem())) == {"dram", "flops"}
  measured = roofline.Roofline(10.0, {"float32": 100.0}, {}, gather_gbs=1e-6)
  assert _problem(fmt="bsr").gathered_bytes() == 0
  assert set(measured.floors_us(_problem(fmt="bsr"))) == {"dram", "flops"}


def test_gather_kernel_sums_the_rows_it_gathers():
  import jax.numpy as jnp
  import numpy as np
  from experiments import gather_kernel
  rng = np.random.default_rng()
  table = rng.standard_normal((50, 8)).astype(np.float32)
  rows = rng.integers(0, 50, 4 * 32).astype(np.int32)
  out = gather_kernel.gather_sums(jnp.asarray(table), jnp.asarray(rows), rows_per_program=32,
                                  step=8, interpret=True)
  expected = table.astype(np.float64)[rows].reshape(4, 32, 8).sum(axis=1)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="multiple of rows_per_program"):
    gather_kernel.gather_sums(jnp.asarray(table), jnp.asarray(rows[:40]), rows_per_program=32,
                              interpret=True)


def test_measure_gather_counts_the_rows_it_gathers():
  details = {}
  gbs = roofline.measure_gather(details, count=1024, interpret=True)
  assert gbs > 0 and details["gather_gbs"] == gbs
  assert details["gather_row_bytes"] == roofline.GATHER_ROW * 4
