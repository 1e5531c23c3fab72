"""experiments/gpu_checks/sddmm_config_sweep.py and the sweep loop it shares with the SpMM sweep
(``bench_common.sweep_configs``): distinct valid configs with the default and the dense path
first, cases the harness can build, the reference sampled at the pattern, and wrong launches
recorded as wrong, not timed."""

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from experiments.gpu_checks import bench_common, sddmm_config_sweep
from pallas_kernels import csr_sddmm


def test_configs_are_distinct_with_the_default_and_the_dense_path_first():
  for default in (csr_sddmm.choose_config(4096, 4096 * 205, 1024),
                  csr_sddmm.choose_config(4096, 4096 * 82, 128)):
    configs = sddmm_config_sweep.configs(default, smoke=False)
    assert configs[:2] == [default, sddmm_config_sweep.DENSE_PATH]
    assert len(set(configs)) == len(configs) > 10


def test_cases_are_uniform_sddmm_at_high_sparsity():
  cases = sddmm_config_sweep.plan(smoke=False)
  assert len(set(cases)) == len(cases) == 6
  assert all(case.op == "sddmm" and case.sparsity >= 0.9 and case.n in (128, 1024)
             for case in cases)


def test_sampled_product_reads_the_product_at_each_stored_position():
  rng = np.random.default_rng()
  x, y = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
  row_offsets = np.array([0, 2, 2, 3])  # an empty row, then one padding position
  col_indices = np.array([1, 3, 0, 2], np.int32)
  out = np.asarray(sddmm_config_sweep.sampled_product(jnp.asarray(x), jnp.asarray(y),
                                                      col_indices, row_offsets))
  expected = [x[0] @ y[1], x[0] @ y[3], x[2] @ y[0], 0.0]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_sweep_records_a_wrong_launch_as_wrong_and_does_not_time_it(tmp_path):
  table = bench_common.ProbeTable(tmp_path, "sweep", "t", bench_common.probe_meta(),
                                  bench_common.CONFIG_SWEEP_HEADER)

  def timer_of(config, record):
    record["rel_err"] = 0.0 if config == "right" else 0.5
    return None

  bench_common.sweep_configs(table, "case", ["right", "wrong"], "right", timer_of, str,
                             over_budget=lambda: False, smoke=True)
  right, wrong = table.records
  assert "error" not in right and right["default"]
  assert wrong["error"].startswith("wrong: rel err 5.0e-01")


def test_smoke_run_checks_every_launch(tmp_path):
  """The script end to end in interpret mode: every launch correct (nothing timed)."""
  subprocess.run([sys.executable, "-P", "experiments/gpu_checks/sddmm_config_sweep.py",
                  str(tmp_path), "--smoke"], check=True, capture_output=True,
                 env={"JAX_PLATFORMS": "cpu", "PATH": ""})
  records = [json.loads(line) for line in (tmp_path / "sddmm_config_sweep.jsonl").open()]
  rows = [r for r in records if "case" in r]
  assert len(rows) == 3 and all(r["rel_err"] < 1e-5 and "error" not in r for r in rows)
