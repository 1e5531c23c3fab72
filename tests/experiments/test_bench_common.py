"""experiments.gpu_checks.bench_common's kernel-time line helpers, without a GPU (checks only:
``trace=False``)."""

import time

import jax.numpy as jnp

from experiments.gpu_checks import bench_common


def test_time_kernel_lines_checks_skips_and_records_errors(tmp_path):
  table = bench_common.kernel_line_table(tmp_path, "lines", "test lines", plan="test")
  w = jnp.asarray([[1.0, 2.0], [3.0, 4.0]])
  x = jnp.asarray([[1.0], [1.0]])
  expected = w @ x
  lines = [("dense", jnp.dot, (w, x)), ("unused", None, ()),
           ("wrong", lambda a, b: jnp.dot(a, b) + 1.0, (w, x)),
           ("broken", lambda a, b: jnp.dot(a, b[:1]), (w, x))]
  bench_common.time_kernel_lines(table, lines, shape=(2, 2), n=1, expected=expected,
                                 deadline=time.monotonic() + 60, tolerance=1e-3, trace=False)
  records = {record["line"]: record for record in table.records}
  assert set(records) == {"dense", "wrong", "broken"}  # a None fn is left out
  assert records["dense"]["rel_err"] == 0 and "error" not in records["dense"]
  assert records["wrong"]["error"].startswith("ValueError: wrong: rel err")
  assert "error" in records["broken"]
  assert (tmp_path / "lines.md").read_text().count("| 2x2 | 1 |") == 3
  late = bench_common.kernel_line_table(tmp_path, "late", "late lines")
  bench_common.time_kernel_lines(late, lines[:1], shape=(2, 2), n=1, expected=expected,
                                 deadline=time.monotonic() - 1, tolerance=1e-3, trace=False)
  assert late.records[0]["error"] == "skipped: budget"
