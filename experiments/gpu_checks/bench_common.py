"""What the GPU check scripts share: a row log under a deadline, a compiled timer reused across
operands of one shape, the CUDA runtime version, and the launch probes' timing, header, checked
timing of one launch and write-out.

Used by attention_bench.py, attention_mgpu_bench.py and bsr_mgpu_bench.py (logs, timers) and
by csr_prefetch_probe.py, tiled_probe.py, nm_probe.py, cusparselt_probe.py and
nm_skinny_probe.py (the probe helpers at the end).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import time
import traceback
from typing import Any, Callable

from experiments.timing import JaxCallTimer, JaxLoopTimer, Measurement, TimingConfig


def cuda_runtime() -> int | None:
  """The CUDA runtime version jaxlib reports (e.g. 13000), or None without CUDA."""
  from jax._src.lib import cuda_versions
  try:
    return cuda_versions.cuda_runtime_get_version() if cuda_versions else None
  except Exception:  # noqa: BLE001
    return None


class BenchLog:
  """The rows of one check script, kept in ``rows`` and written out (``write()``) after every
  row, so a run killed at its time limit keeps what it measured.

  Args:
    budget_s: seconds from now after which ``attempt`` starts nothing that needs more time.
    write: writes the outputs from ``rows`` (called after each row).
    widths: columns of the case and line names in the progress lines.
  """

  def __init__(self, budget_s: float, write: Callable[[], Any], *,
               widths: tuple[int, int] = (26, 26)):
    self.rows: list[dict] = []
    self.started = time.time()
    self.deadline = self.started + budget_s
    self._write, self._widths = write, widths

  def record(self, **row) -> None:
    """Appends one row (``error`` None unless given), prints a progress line, writes out."""
    row.setdefault("error", None)
    self.rows.append(row)
    median, check = row.get("median_us"), row.get("check")
    status = row["error"] or " ".join(
        part for part in (f"{median:.1f} us" if median is not None else "",
                          str(check) if check else "") if part)
    case_width, line_width = self._widths
    print(f"[{time.time() - self.started:6.1f}s] {row['case']:<{case_width}} "
          f"{row['line']:<{line_width}} {status}", flush=True)
    self._write()

  def attempt(self, case: str, line: str, need_s: float, body: Callable[[], dict],
              **extra) -> dict | None:
    """Records ``body()``'s fields unless fewer than ``need_s`` seconds are left before the
    deadline (recorded as skipped); an exception is recorded as the row's error and the script
    goes on. Returns the fields, or None."""
    if time.time() + need_s > self.deadline:
      self.record(case=case, line=line, error=f"skipped: {self.deadline - time.time():.0f}s "
                  f"left, needs ~{need_s}s", **extra)
      return None
    try:
      fields = body()
    except Exception as error:  # noqa: BLE001
      text = str(error)
      message = f"{type(error).__name__}: {text.splitlines()[0][:300] if text else ''}"
      self.record(case=case, line=line, error=message, **extra)
      traceback.print_exc(limit=3)
      return None
    self.record(case=case, line=line, **extra, **fields)
    return fields


class CompiledLoop:
  """One timer compilation reused for operands of the same shapes and dtypes (e.g. masks of
  several densities padded to one length): a new timer would recompile the loop and the kernel.
  ``per_call`` (smoke runs on the CPU) times single calls instead of the in-loop timer."""

  def __init__(self, fn: Callable[..., Any], operands: tuple, *, per_call: bool = False):
    self.timer = JaxCallTimer(fn, operands) if per_call else JaxLoopTimer(fn, [operands])

  def measure(self, operands: tuple, config: TimingConfig) -> tuple[Measurement, Any]:
    """(the measurement, the op's output) on ``operands``."""
    timer = self.timer.with_operands([operands])
    output = timer.run_once()
    return timer.measure(config), output


def write_probe(outdir: pathlib.Path, stem: str, title: str, meta: dict, records: list[dict],
                table: list[str]) -> None:
  """A probe's outputs so far: OUTDIR/<stem>.jsonl (``meta`` then one record per launch) and
  OUTDIR/<stem>.md (``title`` with the device and date, ``meta`` as a list, the table rows)."""
  (outdir / f"{stem}.jsonl").write_text("\n".join(json.dumps(r) for r in [meta] + records) + "\n")
  (outdir / f"{stem}.md").write_text(
      f"# {title} ({meta['devices'][0]}, {meta['date'][:10]})\n\n"
      + "\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n\n" + "\n".join(table) + "\n")


def probe_arguments(doc: str, add=lambda parser: None):
  """A probe's command line: OUTDIR (created), ``--budget-s`` and ``--smoke``, plus what ``add``
  adds to the parser; the description is ``doc``'s first line. Returns the parsed arguments."""
  import argparse
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--budget-s", type=float, default=200.0)
  parser.add_argument("--smoke", action="store_true", help="tiny shapes, interpret mode")
  add(parser)
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  return args


def probe_timing(smoke: bool) -> TimingConfig:
  """The probes' timing: medians of 5 samples of >= 2 ms, at most 0.25 s a launch; one call
  (smoke runs, interpret mode)."""
  if smoke:
    return TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0, max_inner=1)
  return TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.002, max_total_s=0.25)


def probe_meta(**fields) -> dict:
  """A probe's header record: the date, the devices, jax's version, the timing, ``fields``."""
  import jax
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "devices": [d.device_kind for d in jax.devices()], "jax": jax.__version__,
          "timing": "JaxLoopTimer median us", **fields}


def rel_err(out: Any, expected: Any) -> float:
  """max |out - expected| / max |expected|, in float32."""
  import jax.numpy as jnp
  out = jnp.asarray(out).astype(jnp.float32)
  return float(jnp.max(jnp.abs(out - expected)) / jnp.max(jnp.abs(expected)))


def dense_bf16(w: Any, x: Any) -> Any:
  """The bf16 probes' dense baseline: ``w @ x`` accumulated in float32, cast to bfloat16."""
  import jax.numpy as jnp
  return jnp.dot(w, x, preferred_element_type=jnp.float32).astype(jnp.bfloat16)


def bf16_columns_and_reference(key: Any, w: Any, n: int) -> tuple[Any, Any]:
  """(x: [K, n] bfloat16 normal draws keyed by ``n``, the float32 HIGHEST product ``w @ x``)
  for a weight ``w`` [M, K]."""
  import jax
  import jax.numpy as jnp
  x = jax.random.normal(jax.random.fold_in(key, n), (w.shape[1], n)).astype(jnp.bfloat16)
  expected = jnp.dot(w.astype(jnp.float32), x.astype(jnp.float32),
                     precision=jax.lax.Precision.HIGHEST)
  return x, expected


def launch_checked(record: dict, fn: Callable[..., Any], operands: tuple, expected: Any, *,
                   output: Callable[[Any], Any] = lambda out: out) -> Any:
  """``fn``'s one-op loop timer (``timing.JaxLoopTimer``), launched once, its error against
  ``expected`` added to ``record`` ("rel_err", of ``output(out)``). Raises what ``fn`` raises."""
  from experiments import timing
  timer = timing.JaxLoopTimer(fn, [operands])
  record["rel_err"] = rel_err(output(timer.launch()), expected)
  return timer


def time_checked(record: dict, fn: Callable[..., Any], operands: tuple, working_set: int,
                 config: TimingConfig, expected: Any, *, skip: bool,
                 output: Callable[[Any], Any] = lambda out: out) -> None:
  """Adds to ``record`` the launch's timing ("jsparse", ``structured_bench.time_jax``) and its
  error against ``expected`` ("rel_err": max |output(out) - expected| / max |expected|); or
  "error": skipped (``skip``, the budget is spent) or the exception it raised."""
  from experiments.gpu_checks import structured_bench
  if skip:
    record["error"] = "skipped: time budget spent"
    return
  try:
    result, out = structured_bench.time_jax(fn, operands, working_set, config)
    record["jsparse"] = result
    record["rel_err"] = rel_err(output(out), expected)
  except Exception as error:  # noqa: BLE001 - record and go on
    record["error"] = f"{type(error).__name__}: {error}"[:400]


def median_us(record: dict) -> float | None:
  """The median of ``time_checked``'s timing, None when it did not run."""
  return record.get("jsparse", {}).get("median_us")


def time_cell(record: dict, width: int = 60) -> str:
  """A table cell: the median us, or the first ``width`` characters of the error."""
  us = median_us(record)
  return "%.1f" % us if us else record.get("error", "-")[:width]


def rel_err_cell(record: dict) -> str:
  """A table cell: ``time_checked``'s relative error, or "-"."""
  return "%.1e" % record["rel_err"] if "rel_err" in record else "-"


def result_cells(record: dict, dense_us: float, weight_bytes: int) -> str:
  """A probe row's last cells from ``time_checked``'s record: median us (or the error), dense
  us, dense / this, W GB/s (``weight_bytes`` over the median), relative error."""
  us = median_us(record)
  return (f"{time_cell(record)} | {dense_us:.1f} | "
          f"{'%.2fx' % (dense_us / us) if us else '-'} | "
          f"{'%.0f' % (weight_bytes / us / 1e3) if us else '-'} | {rel_err_cell(record)} |")


class ProbeTable:
  """A probe's output as it goes: the header is printed at once; each ``add(record, row)`` keeps
  the record and its table row, prints the row and rewrites OUTDIR/<stem>.jsonl and .md
  (``write_probe``), so a run stopped early keeps what it measured."""

  def __init__(self, outdir: pathlib.Path, stem: str, title: str, meta: dict, header: str):
    self.outdir, self.stem, self.title, self.meta = outdir, stem, title, meta
    self.records: list[dict] = []
    self.lines = [header]
    print(header, flush=True)

  def add(self, record: dict, row: str) -> None:
    self.records.append(record)
    self.lines.append(row)
    print(row, flush=True)
    write_probe(self.outdir, self.stem, self.title, self.meta, self.records, self.lines)


KERNEL_LINE_HEADER = ("| W | N | {} | kernel us | dense / this | rel err |\n"
                      "|---|---|---|---|---|---|")


def kernel_line_table(outdir: pathlib.Path, stem: str, title: str, column: str = "line",
                      pattern: str = "2:4", **meta) -> ProbeTable:
  """A probe table of lines timed by kernel time (``time_kernel_lines``), bf16 weights of
  ``pattern``."""
  meta = probe_meta(dtype="bfloat16", pattern=pattern,
                    kernel_time="experiments.kernel_time.measure, median us", **meta)
  return ProbeTable(outdir, stem, title, meta, KERNEL_LINE_HEADER.format(column))


def time_line(record: dict, make_timer: Callable[[dict], Any], *, tolerance: float,
              wall: bool = False, trace: bool = True) -> None:
  """Adds to ``record`` the launch's kernel time (``experiments.kernel_time``; with ``wall``
  its wall-clock median too; without ``trace``, only the check), or its ``error``:
  ``make_timer(record)`` returns the launched timer with ``record["rel_err"]`` set, which must
  be below ``tolerance``."""
  from experiments import kernel_time
  try:
    timer = make_timer(record)
    if not record["rel_err"] < tolerance:
      raise ValueError(f"wrong: rel err {record['rel_err']:.2e}")
    if not trace:
      return
    calls = 15
    if wall:
      record["wall_median_us"] = timer.measure(probe_timing(False)).median_us
      calls = kernel_time.calls_for(record["wall_median_us"])
    record.update(kernel_time.measure(timer, calls=calls).record_fields())
  except Exception as failure:  # noqa: BLE001 - record and go on
    record["error"] = f"{type(failure).__name__}: {failure}"[:300]


def kernel_cells(record: dict, dense_us: float | None) -> str:
  """"kernel us | dense / this" cells of a row (the error in the first where it failed)."""
  us = record.get("kernel_median_us")
  ratio = f"{dense_us / us:.2f}x" if us and dense_us else "-"
  return f"{f'{us:.1f}' if us else record.get('error', '-')[:80]} | {ratio}"


def time_kernel_lines(table: ProbeTable, lines, *, shape, n: int, expected: Any, deadline: float,
                      tolerance: float, column: str = "line", trace: bool = True) -> None:
  """Checks and times each ``(name, fn, operands)`` of ``lines`` (None ``fn``: left out)
  against ``expected`` (``launch_checked``, ``time_line``), each row's ratio to the "dense"
  line; lines past ``deadline`` (``time.monotonic()``) are recorded as skipped."""
  dense_us = None
  for name, fn, operands in lines:
    if fn is None:
      continue
    record = {"shape": list(shape), "n": n, column: name}
    if time.monotonic() > deadline:
      record["error"] = "skipped: budget"
    else:
      time_line(record, lambda record, fn=fn, operands=operands: launch_checked(
          record, fn, operands, expected), tolerance=tolerance, trace=trace)
    dense_us = record.get("kernel_median_us") if name == "dense" else dense_us
    table.add(record, f"| {shape[0]}x{shape[1]} | {n} | {name} | "
              f"{kernel_cells(record, dense_us)} | {rel_err_cell(record)} |")


CONFIG_SWEEP_HEADER = ("| case | config | default | kernel us | / default | rel err |\n"
                       "|---|---|---|---|---|---|")


def sweep_configs(table: ProbeTable, case_key: str, configs: list[Any], default: Any,
                  timer_of: Callable[[Any, dict], Any], describe: Callable[[Any], str], *,
                  over_budget: Callable[[], bool], smoke: bool, fields: dict | None = None,
                  max_rel_err: float = 1e-4) -> None:
  """One case of a kernel-config sweep: for each config, ``timer_of(config, record)`` builds and
  launches the config's one-op timer once (``launch_checked``, which adds "rel_err" to
  ``record``); a config whose error is ``max_rel_err`` or more is recorded as wrong and not
  timed, the others by device kernel time (``experiments.kernel_time``; not with ``smoke``).
  Adds one ``CONFIG_SWEEP_HEADER`` row a config to ``table``, each time also as a ratio to the
  default's (``default`` is in ``configs``)."""
  from experiments import kernel_time
  default_us = None
  for config in configs:
    label = config if isinstance(config, str) else describe(config)
    record = {"case": case_key, "default": config == default, **(fields or {}),
              "config": config if isinstance(config, str) else dataclasses.asdict(config)}
    if over_budget():
      record["error"] = "skipped: time budget spent"
    else:
      try:
        timer = timer_of(config, record)
        if not record["rel_err"] < max_rel_err:
          record["error"] = f"wrong: rel err {record['rel_err']:.1e}"
        elif not smoke:
          record.update(kernel_time.measure(timer).record_fields())
      except Exception as error:  # noqa: BLE001 - record and go on
        record["error"] = f"{type(error).__name__}: {error}"[:300]
    kernel = record.get("kernel_median_us")
    if config == default:
      default_us = kernel
    ratio = f"{kernel / default_us:.2f}" if kernel and default_us else "-"
    table.add(record, f"| {case_key} | {label} | {'yes' if config == default else ''} | "
              f"{'%.1f' % kernel if kernel else record.get('error', '-')[:60]} | {ratio} | "
              f"{rel_err_cell(record)} |")
