"""Runs a list of cases through the lines: build, check, time, and one record per (case, line).

Per (case, line), in order, the first that holds decides the record's ``status``:
- "n/a": the line does not apply to the case (``Line.applies``, ``NotApplicable``, or a library
  raising ``NotImplementedError``, e.g. torch's MKL path for bfloat16); kept in results.jsonl
  with the reason, left out of tables and plots;
- "skipped": the line would materialise a gather larger than ``max_gather_bytes`` (the
  reference lowerings gather nnz x N values), or, under a ``max_op_s`` limit, its first call took
  over ``FIRST_CALL_LIMITS`` times the limit (checked, not timed; an op merely slower than the
  limit is timed by one warm call);
- "error": building, compiling or running raised (message recorded; the run goes on);
- "wrong": the output differs from the float64 reference beyond the tolerance (not timed);
- "ok": checked and timed.

With ``RunSettings.rounds`` > 1 (CPU runs of ``experiments/run.py`` on a shared machine), once
every line of a case has been measured, each "ok" line is measured again, ``rounds - 1`` more
times, in the same order, and its record keeps the round with the lowest median (all rounds'
medians in ``round_medians_us``): lines of one case are interleaved in time, so a slow spell
(another process, another virtual machine on the host) that catches one line's measurement does
not decide the comparison. Every line is treated alike; lines whose time does not depend on the
pattern (``Line.shared``: dense) are then measured in every case rather than once per shape.
"""

from __future__ import annotations

import dataclasses
import gc
import time
import traceback
from typing import Callable, Iterable, Sequence

from experiments import check, kernel_time, timing
from experiments.grid import Case
from experiments.lines import BASELINE, Line, NotApplicable
from experiments.machine import Machine
from experiments.problems import Problem, build_problem
from experiments.roofline import Roofline

DEFAULT_MAX_GATHER_BYTES = 2 * 2**30
MESSAGE_CHARS = 400
# With a --max-op-s limit, a line whose first call (compilation included) takes longer than this
# many times the limit is recorded as skipped (checked, not timed).
FIRST_CALL_LIMITS = 10


@dataclasses.dataclass
class RunSettings:
  """What a run needs besides its cases and lines."""

  machine: Machine
  roofline: Roofline
  timing: timing.TimingConfig
  max_gather_bytes: int = DEFAULT_MAX_GATHER_BYTES
  preset: str = "custom"
  # time.perf_counter() after which no new case starts (its lines are recorded as skipped).
  deadline: float | None = None
  # Measurements per line of a case, interleaved across its lines; the lowest median is kept.
  rounds: int = 1
  # Also each "ok" line's device time per call, from a profiler trace (``kernel_time``; GPU
  # runs): the ``kernel_*`` fields, one method for every framework.
  kernel_time: bool = False


def run_cases(cases: Sequence[Case], lines: Sequence[Line], settings: RunSettings,
              progress: Callable[[Case, str], None] = lambda case, line: None,
              records: list[dict] | None = None) -> list[dict]:
  """Every (case, line) record, in case order, lines in the given order.

  Records are appended to ``records`` (a new list if None) as each line finishes, so that a
  caller interrupted mid-run (e.g. by SIGTERM from a time limit) still holds the finished cases.
  """
  records = [] if records is None else records
  shared = {}
  for case in cases:
    if settings.deadline is not None and time.perf_counter() > settings.deadline:
      progress(case, "skipped")
      records.extend(_record(case, line, settings, None, status="skipped",
                             message="the run's time budget (--budget-s) was spent")
                     for line in lines)
      continue
    first = len(records)
    _run_case(case, lines, settings, shared, progress, records)
    _add_speedups(records[first:])
  return records


def _run_case(case: Case, lines: Sequence[Line], settings: RunSettings, shared: dict,
              progress: Callable[[Case, str], None], records: list[dict]) -> None:
  """Appends the case's records to ``records``, one as each line finishes."""
  machine = settings.machine
  try:
    problem = build_problem(case)
  except Exception as error:  # a source that cannot be built fails its lines, not the run
    records.extend(_record(case, line, settings, None, status="error",
                           message=f"building the matrix: {_describe(error)}") for line in lines)
    return
  expected = None
  timed = []  # (record, timer) of the lines measured in this case, for further rounds
  for line in lines:
    progress(case, line.name)
    reason = line.applies(case, machine)
    if reason is not None:
      records.append(_record(case, line, settings, problem, status="n/a", message=reason))
      continue
    # A line whose time does not depend on the pattern (dense) is measured once per shape, except
    # with several rounds: then every case measures it in its own time window, beside the lines
    # it is compared with (a host's slow spell can last a case or two: measured, 1.4-1.8x on
    # every line of one case while the dense time reused from an earlier case was not).
    shared_key = ((line.name, case.op, problem.shape, case.n)
                  if line.shared and settings.rounds == 1 else None)
    if shared_key in shared:
      records.append(_reuse(shared[shared_key], case, problem, settings))
      continue
    if line.gathers and problem.gather_bytes() > settings.max_gather_bytes:
      records.append(_record(case, line, settings, problem, status="skipped",
                             message=f"too large: the gather needs "
                             f"{problem.gather_bytes() / 2**30:.1f} GiB"))
      continue
    started = time.perf_counter()
    if expected is None:
      expected = check.reference(problem)
    record = _measure(case, line, problem, expected, settings, timed)
    record["wall_s"] = time.perf_counter() - started
    if shared_key is not None and record["status"] == "ok":
      shared[shared_key] = record
    records.append(record)
    if machine.on_gpu:
      gc.collect()  # drop the line's device buffers before the next one allocates
  for _ in range(settings.rounds - 1):
    for record, line_timer in timed:
      progress(case, record["line"])
      _measure_again(record, line_timer, settings)
  del timed
  gc.collect()  # on the CPU once a case: a collection costs tens of ms, a small line as much


def _timing_fields(measurement: timing.Measurement, working_set: int, problem: Problem,
                   settings: RunSettings) -> dict:
  floor = settings.roofline.floor_us(problem)
  return dict(**measurement.asdict(),
              cache=timing.cache_state(working_set, settings.machine.cache_bytes,
                                       measurement.copies),
              gflops=problem.flops / (measurement.median_us * 1e3),
              roofline_fraction=floor / measurement.median_us)


def _measure_again(record: dict, line_timer: tuple, settings: RunSettings) -> None:
  """One more round for an "ok" record: keeps the lower median (``RunSettings.rounds``).
  ``line_timer`` is (timer, working-set bytes, problem)."""
  timer, working_set, problem = line_timer
  try:
    measurement = timer.measure(settings.timing)
  except Exception:  # the first round stands
    return
  record["round_medians_us"].append(measurement.median_us)
  if measurement.median_us < record["median_us"]:
    fields = _timing_fields(measurement, working_set, problem, settings)
    fields["timing_method"] = fields.pop("method")
    record.update(fields)


def _measure(case: Case, line: Line, problem: Problem, expected: check.Reference,
             settings: RunSettings, timed: list | None = None) -> dict:
  """The line's record; an "ok" one is appended to ``timed`` with its timer (further rounds)."""
  machine = settings.machine
  working_set = line.working_set_bytes(problem)
  copies = timing.operand_copies(working_set, machine.cache_bytes)
  allowed = check.tolerance(line.dtype_for(case), on_gpu=machine.on_gpu, tf32=line.tf32)
  started = time.perf_counter()
  limit = settings.timing.max_op_s
  single_s = None  # with a --max-op-s limit: one warm op's seconds
  try:
    prepared = line.prepare(problem, copies, machine)
    prepared_at = time.perf_counter()
    if limit is None:
      out = prepared.timer.run_once()
    else:  # size the op up one call at a time (run_once may run several ops)
      out, first_s = prepared.timer.run_single()
      if first_s <= FIRST_CALL_LIMITS * limit:
        out, single_s = prepared.timer.run_single()
    verdict = check.compare(prepared.to_dense(out), expected, allowed)
  except (NotApplicable, NotImplementedError) as refusal:  # no path for this case (a dtype...)
    return _record(case, line, settings, problem, status="n/a", message=_describe(refusal))
  except Exception as error:
    return _record(case, line, settings, problem, status="error", message=_describe(error))
  checked = dict(error_rel=verdict.error, tolerance=allowed, notes=prepared.notes,
                 prepare_s=prepared_at - started, check_s=time.perf_counter() - prepared_at)
  if not verdict.ok:
    return _record(case, line, settings, problem, status="wrong", message=verdict.message(),
                   **checked)
  if limit is not None and single_s is None:
    return _record(case, line, settings, problem, status="skipped",
                   message=f"too slow to time: its first call took {first_s:.1f} s (compilation "
                   f"included), over {FIRST_CALL_LIMITS}x --max-op-s {limit:g}", **checked)
  one_call = single_s is not None and single_s > limit
  try:
    if one_call:
      measurement = timing.Measurement(single_s * 1e6, single_s * 1e6, single_s * 1e6, 1, 1, 1,
                                       f"one call (slower than --max-op-s {limit:g})")
    else:
      measurement = prepared.timer.measure(settings.timing)
  except Exception as error:
    return _record(case, line, settings, problem, status="error",
                   message=f"while timing: {_describe(error)}", **checked)
  record = _record(case, line, settings, problem, status="ok", **checked,
                   **_timing_fields(measurement, working_set, problem, settings))
  if settings.kernel_time and not one_call:
    record.update(_kernel_fields(prepared.timer, measurement, problem, settings))
  if timed is not None and settings.rounds > 1 and not one_call:
    record["round_medians_us"] = [measurement.median_us]
    timed.append((record, (prepared.timer, working_set, problem)))
  return record


def _kernel_fields(timer: timing.Timer, measurement: timing.Measurement, problem: Problem,
                   settings: RunSettings) -> dict:
  """The ``kernel_*`` fields of an "ok" record, or ``kernel_error`` (the record stays "ok": its
  wall-clock time stands)."""
  try:
    measured = kernel_time.measure(timer, calls=kernel_time.calls_for(measurement.median_us))
  except Exception as error:
    return {"kernel_error": _describe(error)}
  return {**measured.record_fields(),
          "kernel_roofline_fraction": settings.roofline.floor_us(problem) / measured.median_us}


def _record(case: Case, line: Line, settings: RunSettings, problem: Problem | None,
            *, status: str, message: str = "", **fields) -> dict:
  machine, roofline = settings.machine, settings.roofline
  record = {**case.asdict(), "case": case.key, "line": line.name, "framework": line.framework,
            "compute_dtype": line.dtype_for(case), "status": status, "message": message}
  if problem is not None:
    record.update(_problem_fields(problem, roofline))
  record.update(fields)
  if "method" in record:
    record["timing_method"] = record.pop("method")
  record.update(device=machine.device, platform=machine.platform, cpu_model=machine.cpu_model,
                cpu_cores=machine.cpu_cores, versions=machine.versions, date=machine.date,
                preset=settings.preset, bandwidth_gbs=roofline.bandwidth_gbs,
                gather_gbs=roofline.gather_gbs,
                peak_gflops=roofline.matmul_gflops.get(case.dtype))
  return record


def _problem_fields(problem: Problem, roofline) -> dict:
  """A record's fields that follow from its problem: shape, work, bytes and floors."""
  return dict(shape=list(problem.shape), nnz=problem.nnz,
              actual_sparsity=problem.actual_sparsity, pattern=problem.pattern,
              flops=problem.flops, min_bytes=problem.min_bytes(),
              gathered_bytes=problem.gathered_bytes(), **roofline.record_fields(problem))


def _reuse(measured: dict, case: Case, problem: Problem, settings: RunSettings) -> dict:
  """A shared line's record for another case of the same (op, shape, N): same time, this case's
  floor and fraction."""
  record = dict(measured)
  fields = _problem_fields(problem, settings.roofline)
  floor = fields["floor_us"]
  record.update(case.asdict(), case=case.key, compute_dtype=measured["compute_dtype"],
                **fields, gflops=problem.flops / (measured["median_us"] * 1e3),
                roofline_fraction=floor / measured["median_us"], shared_from=measured["case"],
                peak_gflops=settings.roofline.matmul_gflops.get(case.dtype))
  if "kernel_median_us" in measured:
    record["kernel_roofline_fraction"] = floor / measured["kernel_median_us"]
  return record


def _add_speedups(records: Iterable[dict]) -> None:
  records = list(records)
  baseline = next((r for r in records if r["line"] == BASELINE and r["status"] == "ok"), None)
  for record in records:
    if baseline is not None and record["status"] == "ok":
      record[f"speedup_vs_{BASELINE}"] = baseline["median_us"] / record["median_us"]


def _describe(error: BaseException) -> str:
  text = f"{type(error).__name__}: {error}".strip()
  if len(text) > MESSAGE_CHARS:
    text = text[:MESSAGE_CHARS] + "..."
  where = traceback.extract_tb(error.__traceback__)
  if where:
    frame = where[-1]
    text += f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
  return text
