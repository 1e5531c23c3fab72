"""experiments/gpu_checks/nm_decode_kernels_probe.py: the script end to end in interpret mode
(every line's output checked against the float32 product, nothing timed), and the kernels cell
it writes from a kernel-time record."""

import json
import subprocess
import sys

from experiments.gpu_checks import nm_decode_kernels_probe


def test_kernels_cell_lists_name_count_and_time():
  top = [["jsparse_nm_matmul", 1.0, 36.21], ["loop_pad_fusion", 1.0, 1.5]]
  assert (nm_decode_kernels_probe.kernels_cell(top)
          == "jsparse_nm_matmul x1: 36.2; loop_pad_fusion x1: 1.5")


def test_smoke_run_checks_both_lines(tmp_path):
  subprocess.run([sys.executable, "-P", "experiments/gpu_checks/nm_decode_kernels_probe.py",
                  str(tmp_path), "--smoke"], check=True, capture_output=True,
                 env={"JAX_PLATFORMS": "cpu", "JSPARSE_PALLAS_INTERPRET": "1", "PATH": ""})
  records = [json.loads(line) for line in (tmp_path / "nm_decode_kernels.jsonl").open()]
  rows = [r for r in records if "line" in r]
  assert {(r["n"], r["line"]) for r in rows} == {(n, line) for n in (1, 16)
                                                  for line in ("dense", "jsparse-nm")}
  assert all("error" not in r and r["rel_err"] < 2e-2 for r in rows)
