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
  assert roof.floor_us(problem) == pytest.approx(max(floors.values()))
  assert roof.binding_floor(problem) == max(floors, key=floors.get)


def test_the_gather_floor_binds_when_rows_move_slower_than_dram_bytes():
  problem = _problem()
  slow_gather = roofline.Roofline(1e6, {"float32": 1e9}, {}, gather_gbs=1.0)
  assert slow_gather.binding_floor(problem) == "gather"
  assert slow_gather.floor_us(problem) == pytest.approx(problem.gathered_bytes() / 1e3)


def test_no_gather_floor_unmeasured_or_for_tiled_formats():
  unmeasured = roofline.Roofline(10.0, {"float32": 100.0}, {})
  assert set(unmeasured.floors_us(_problem())) == {"dram", "flops"}
  measured = roofline.Roofline(10.0, {"float32": 100.0}, {}, gather_gbs=1e-6)
  assert _problem(fmt="bsr").gathered_bytes() == 0
  assert set(measured.floors_us(_problem(fmt="bsr"))) == {"dram", "flops"}


def test_measure_gather_counts_the_rows_it_gathers():
  details = {}
  gbs = roofline.measure_gather(details, count=roofline.GATHER_GROUP * 64)
  assert gbs > 0 and details["gather_gbs"] == gbs
  assert details["gather_row_bytes"] == roofline.GATHER_ROW * 4
