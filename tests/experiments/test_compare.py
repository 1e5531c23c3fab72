"""experiments.compare: speedups of one line over others, paired by case."""

import json

import pytest

from experiments import compare


def _record(line, sparsity, n, us, status="ok", op="spmm"):
  return {"op": op, "format": "csr", "source": "uniform/64x64", "sparsity": sparsity, "n": n,
          "dtype": "float32", "line": line, "median_us": us, "status": status}


RECORDS = [
    _record("mine", 0.9, 32, 10.0), _record("theirs", 0.9, 32, 20.0),
    _record("mine", 0.9, 128, 40.0), _record("theirs", 0.9, 128, 10.0),
    _record("mine", 0.5, 32, 5.0), _record("theirs", 0.5, 32, 5.0, status="error"),
    _record("theirs", 0.5, 128, 7.0),
    _record("mine", 0.9, 32, 1.0, op="sddmm"), _record("theirs", 0.9, 32, 3.0, op="sddmm"),
]


def test_speedups_pair_ok_records_by_case():
  pairs, unpaired = compare.speedups(RECORDS, "mine", "theirs", op="spmm")
  assert [value for _, value in pairs] == [2.0, 0.25]
  assert unpaired == 2  # s = 0.5: one side in error at N = 32, one side missing at N = 128
  pairs, _ = compare.speedups(RECORDS, "mine", "theirs")
  assert sorted(value for _, value in pairs) == [0.25, 2.0, 3.0]


def test_summary_rows_geometric_mean_and_groups():
  pairs, _ = compare.speedups(RECORDS, "mine", "theirs", op="spmm")
  rows = {group: rest for group, *rest in compare.summary_rows(pairs)}
  assert rows["all"] == [2, pytest.approx(0.7071, rel=1e-3), 0.25, 2.0]
  assert rows["N=32"] == [1, 2.0, 2.0, 2.0] and rows["s=0.9"][0] == 2
  assert compare.summary_rows([]) == []


def test_main_writes_the_table_and_skips_lines_that_did_not_run(tmp_path):
  path = tmp_path / "results.jsonl"
  path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
  out = tmp_path / "compare.md"
  text = compare.main([str(path), "--line", "mine", "--against", "theirs", "absent",
                       "--op", "spmm", "--out", str(out)])
  assert "### mine over theirs (spmm): 2 cases, 2 unpaired" in text
  assert "| all | 2 | 0.71x | 0.25x | 2.00x | 1 |" in text
  assert "absent" not in text and out.read_text().strip() == text.strip()


def test_the_kernel_metric_pairs_records_that_have_it():
  records = [dict(r, kernel_median_us=r["median_us"] / 2) for r in RECORDS]
  records[0] = dict(RECORDS[0])  # mine, s = 0.9, N = 32: no kernel time
  pairs, unpaired = compare.speedups(records, "mine", "theirs", op="spmm",
                                     metric="kernel_median_us")
  assert [value for _, value in pairs] == [0.25] and unpaired == 3
  text = compare.markdown(records, "mine", ["theirs"], op="spmm", metric="kernel_median_us")
  assert "by kernel_median_us" in text
