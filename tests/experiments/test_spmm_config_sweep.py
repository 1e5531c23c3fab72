"""experiments/gpu_checks/spmm_config_sweep.py: the grid it times is made of distinct, valid
configs with the default first (a bad config would fail only on the GPU, mid-run), and its cases
name problems the harness can build."""

from experiments.gpu_checks import spmm_config_sweep
from pallas_kernels import csr_spmm


def test_configs_are_distinct_with_the_default_first():
  for default in (csr_spmm.choose_config(4096, 4096, 1024, 4096 * 410),
                  csr_spmm.choose_config(2048, 512, 128, 2048 * 10)):
    configs = spmm_config_sweep.configs(default, smoke=False)
    assert configs[0] == default and len(set(configs)) == len(configs) > 10
    assert any(config.substeps > 1 for config in configs)
  default = csr_spmm.choose_config(4096, 4096, 32, 4096 * 410)
  configs = spmm_config_sweep.configs(default, smoke=False, narrow=True)
  assert configs[0] == default and len(set(configs)) == len(configs) > 5
  assert all(config.block_n == 32 for config in configs)
  default = csr_spmm.choose_config(512, 2048, 32, 512 * 410)
  configs = spmm_config_sweep.configs(default, smoke=False, long=True)
  assert configs[0] == default and len(set(configs)) == len(configs) > 5
  assert {config.row_splits for config in configs} == {1, 2, 4, 8}
  default = csr_spmm.choose_config(4096, 4096, 1024, 4096 * 410)
  configs = spmm_config_sweep.configs(default, smoke=False, wide=True)
  assert configs[0] == default and len(set(configs)) == len(configs) > 10
  assert {config.block_n for config in configs[1:]} == {128, 256}


def test_cases_are_spmm_on_csr_at_the_issue_widths():
  cases = spmm_config_sweep.plan(smoke=False)
  assert len(set(cases)) == len(cases) == 10
  assert all(case.op == "spmm" and case.format == "csr" and case.n in (128, 1024)
             for case in cases)
  narrow = spmm_config_sweep.plan(smoke=False, narrow=True)
  assert len(set(narrow)) == len(narrow) and all(case.n == 32 for case in narrow)
  long = spmm_config_sweep.plan(smoke=False, long=True)
  assert len(set(long)) == len(long) and all(case.op == "spmm" for case in long)
  wide = spmm_config_sweep.plan(smoke=False, wide=True)
  assert len(set(wide)) == len(wide) and all(case.sparsity >= 0.9 for case in wide)


def test_pieces_plan_times_a_sharded_matrix_row_pieces_with_row_splits():
  cases = spmm_config_sweep.plan(smoke=False, pieces=True)
  assert len(set(cases)) == len(cases) and {case.source for case in cases} >= {
      "uniform/1024x4096", "uniform/4096x4096"}
  for rows in (1024, 4096):
    default = csr_spmm.choose_config(rows, 4096, 1024, rows * 410)
    configs = spmm_config_sweep.configs(default, smoke=False, pieces=True)
    assert configs[0] == default and len(set(configs)) == len(configs) > 10
    assert {config.row_splits for config in configs} == {1, 2, 4}
    # The unsplit 128-column launch (the default before row pieces split) is timed too.
    assert csr_spmm.SpmmConfig(block_n=128, block_nnz=8, num_warps=1, num_stages=2) in configs
