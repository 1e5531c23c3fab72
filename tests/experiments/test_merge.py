"""experiments/merge.py: several results folders into one, later parts winning."""

import json

from experiments import merge  # noqa: E402


def _record(case: str, line: str, status: str = "ok", median_us: float = 1.0) -> dict:
  op, fmt, source, sparsity, n, dtype = case.split("/", 5)[0], "csr", "uniform/8x8", 0.9, 8, "float32"
  return {"case": case, "line": line, "status": status, "median_us": median_us, "op": op,
          "format": fmt, "source": source, "sparsity": sparsity, "n": n, "dtype": dtype,
          "device": "cpu", "platform": "cpu", "date": "2026-11-25", "gflops": 1.0,
          "cpu_model": "x", "cpu_cores": 2, "compute_dtype": dtype,
          "roofline_fraction": 0.5}


def test_later_parts_win_and_dropped_statuses_go():
  first = [_record("spmm/a", "x", "error"), _record("spmm/a", "y", median_us=5.0),
           _record("spmm/b", "x", median_us=2.0)]
  second = [_record("spmm/a", "x", median_us=3.0), _record("spmm/b", "x", "error")]
  merged = merge.merge_records([first, second], drop_status=["error"])
  by_key = {(r["case"], r["line"]): r for r in merged}
  assert set(by_key) == {("spmm/a", "x"), ("spmm/a", "y"), ("spmm/b", "x")}
  assert by_key[("spmm/a", "x")]["median_us"] == 3.0
  # An error of a later part does not replace an ok record of an earlier one when dropped.
  assert by_key[("spmm/b", "x")]["median_us"] == 2.0


def test_cases_a_part_never_started_do_not_replace_measured_ones():
  unstarted = _record("spmm/a", "x", "skipped")
  unstarted["message"] = "the run's time budget (--budget-s) was spent"
  too_large = _record("spmm/b", "x", "skipped")
  too_large["message"] = "too large: the gather needs 20.0 GiB"
  merged = merge.merge_records([[_record("spmm/a", "x", median_us=4.0)], [unstarted, too_large]])
  by_key = {(r["case"], r["line"]): r for r in merged}
  assert by_key[("spmm/a", "x")]["median_us"] == 4.0
  assert by_key[("spmm/b", "x")]["status"] == "skipped"  # a measured decision: kept


def test_main_writes_one_folder(tmp_path):
  parts = []
  for index, records in enumerate([[_record("spmm/a", "x")], [_record("spmm/b", "x")]]):
    folder = tmp_path / f"part{index}"
    folder.mkdir()
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "run.json").write_text(json.dumps({
        "command": f"run {index}", "elapsed": "1 s", "timing": {},
        "machine": {"device": "cpu", "platform": "cpu", "date": "2026-11-25", "cpu_model": "x",
                    "cpu_cores": 2, "cache_bytes": 2**20, "versions": {"jax": "0"}},
        "roofline": {"bandwidth_gbs": 1.0, "matmul_gflops": {"float32": 1.0}}}))
    parts.append(folder)
  merge.main([str(tmp_path / "out"), *map(str, parts)])
  written = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
  assert len(written) == 2
  info = json.loads((tmp_path / "out" / "run.json").read_text())
  assert info["command"] == "run 0 && run 1" and len(info["parts"]) == 2
