"""Timings of the Mosaic GPU BSR SpMM kernel (issue 8), run by bsr_mgpu.sh.

python3 -P experiments/gpu_checks/bsr_mgpu_bench.py OUTDIR --budget-s S [--ns 128,256,1024]
  [--timing kernel|loop] [--smoke]
python3 -P experiments/gpu_checks/bsr_mgpu_bench.py OUTDIR --rerender OLD/bsr_mgpu.json

bfloat16 ``A @ B``, A of 4096x4096 and 14336x4096 with random block masks (exactly
``round(d x blocks)`` blocks kept, uniformly at random, so block rows are ragged) at block
densities d = 0.05, 0.1, 0.2, 0.5, blocks 64x64 then 128x64, B of N = 128, 256 and 1024
columns (``--ns``). Per (block shape, A shape, N) group, in this order under a deadline: dense
``jnp.dot`` (bf16, a dense random A of the same shape; once per A shape and N), then per
density:
- ``mosaic-gpu-1wg`` and ``mosaic-gpu-2wg`` (N >= 256, where a two-warpgroup config divides
  N): this kernel (``bsr_spmm_mgpu``) with one and with two compute warpgroups,
  ``default_config(..., compute_warpgroups=...)``, both at every density; ``mosaic-gpu`` (N <
  256): its default config (one warpgroup). The targets table's Mosaic GPU column is the variant
  ``default_config`` picks for the case, given the mean stored blocks per block row of the mask
  (kept blocks / block rows, ``blocks_per_row``; the padded nse would overstate it), so it
  follows the selection rule per density while each variant compiles once per group;
- ``triton``: the Triton kernel (``bsr_spmm``, the config jsparse's registered lowering picks:
  ``jsparse._gpu.structured.bsr_config``);
- ``torch-bsr_dense_mm``: ``torch.sparse._triton_ops.bsr_dense_mm`` on the same blocks (a torch
  ``sparse_bsr_tensor`` of the same block shape, bfloat16, made from the same device buffers by
  DLPack), timed with ``TorchCudaTimer`` (CUDA events); a failure (no torch, a block shape it
  refuses) is recorded as the row's error.
The blocks of every density are padded to the d = 0.5 count (padding past ``row_offsets[-1]``,
never read), so each JAX kernel compiles once per group. Every output is checked before it is
timed: max |output - reference| / max |reference| against a float32 product of the same
bfloat16 values (``jnp.dot(..., preferred_element_type=float32)``: exact products, float32
sums). Timing (``--timing``): ``kernel`` (the default): every line, JAX and torch alike, by device
kernel time per call (``experiments.kernel_time``: each call alone in a CUPTI trace, no loop,
no running sum, no dispatch), beside its wall-clock median (JAX: ``JaxLoopTimer``, the op back to
back in one jitted loop; torch: CUDA events), which the rows keep; the targets use kernel time.
``loop``: the wall-clock medians only (the method of runs before 2026-11-27, whose JAX lines carry
the loop timer's floor of ~4.7 us an op on an H100). Issue 8's BSR targets per case: time <=
1.3 x d x dense time + 5 us (MET / MISSED for this kernel; the Triton kernel's verdict beside
it; counted over N = 128 and 1024, the issue's cases), and this kernel >= 5x faster than torch's
``bsr_dense_mm``.
Outputs, rewritten after every line (a killed run keeps what it measured): OUTDIR/bsr_mgpu.json
(every row, machine, versions, CUDA runtime, timing, date) and OUTDIR/bsr_mgpu.md (the targets
table, then every line); the table is printed at the end.
--smoke: tiny shapes, the JAX kernels in interpret mode on the CPU, one call per measurement
(checks this script, not the kernels); torch lines are recorded as skipped without torch or a
CUDA device.
--rerender JSON: no timing; rebuilds the targets table of an earlier run's bsr_mgpu.json with
this revision's ``default_config`` and writes OUTDIR/bsr_mgpu_rerendered.md (and .json). Its
mosaic-gpu lines (``mosaic-gpu`` and ``mosaic-gpu-1wg`` / ``-2wg``, of either era) count as one or
two warpgroups by their config's ``compute_warpgroups``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import jsparse
from experiments import kernel_time, machine
from experiments.gpu_checks import bench_common
from experiments.gpu_checks.bsr_masks import block_mask, bsr_operands
from experiments.gpu_checks.bench_common import BenchLog, cuda_runtime
from experiments.timing import TimingConfig, TorchCudaTimer
from jsparse._gpu import structured
from pallas_kernels import bsr_spmm, bsr_spmm_mgpu

BF16 = jnp.bfloat16
DENSITIES = (0.05, 0.1, 0.2, 0.5)
BLOCK_SHAPES = ((64, 64), (128, 64))
SHAPES = ((4096, 4096), (14336, 4096))
NS = (128, 256, 1024)
ISSUE_NS = (128, 1024)  # the N of issue 8's targets
TWO_WG_MIN_N = bsr_spmm_mgpu.TWO_WARPGROUP_N  # both variants timed from this N
TORCH_SPEEDUP = 5.0  # issue 8: this kernel >= 5x faster than torch's bsr_dense_mm
TOLERANCE = 2e-2  # relative max error of a bf16 output (rounding alone: ~4e-3)
# As attention_mgpu_bench.py: samples of >= 20 ms (a JaxLoopTimer sample includes one dispatch).
TIMING = TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.02, max_total_s=0.3)


def parse_args():
  parser = argparse.ArgumentParser()
  parser.add_argument("out_dir")
  parser.add_argument("--budget-s", type=float, default=140.0)
  parser.add_argument("--ns", default=",".join(map(str, NS)),
                      help="comma-separated N (columns of B)")
  parser.add_argument("--timing", choices=("kernel", "loop"), default="kernel",
                      help="what the targets use: device kernel time per call (the default) or "
                           "the wall-clock medians (smoke runs: loop)")
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--rerender", metavar="JSON", default=None,
                      help="re-render an earlier run's bsr_mgpu.json (no timing)")
  return parser.parse_args()


ARGS = parse_args()
SMOKE = ARGS.smoke
NS = tuple(int(n) for n in ARGS.ns.split(","))
KERNEL_TIME = ARGS.timing == "kernel" and not SMOKE  # the interpreter has no kernels to trace
if SMOKE:
  # N = 512: the two-warpgroup default and the one-warpgroup line, in the interpreter.
  SHAPES, NS, DENSITIES = ((256, 256),), (128, 512), (0.25, 0.5)
  ISSUE_NS = NS
  TIMING = TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0)
try:
  import torch
  from torch.sparse._triton_ops import bsr_dense_mm
  TORCH_SKIP = None if torch.cuda.is_available() else "skipped: torch sees no CUDA device"
except Exception as error:  # noqa: BLE001  (the CPU venv has no torch)
  TORCH_SKIP = f"skipped: torch not importable ({type(error).__name__}: {error})"[:200]
ENV = machine.detect().asdict()
LOG = BenchLog(ARGS.budget_s, lambda: write_outputs(), widths=(36, 11))
results, record, attempt, DEADLINE = LOG.rows, LOG.record, LOG.attempt, LOG.deadline
dense_times: dict[tuple[tuple[int, int], int], float] = {}


# -- recording ----------------------------------------------------------------------------------
def target_us(density: float, dense_us: float | None) -> float | None:
  return None if dense_us is None else 1.3 * density * dense_us + 5.0


def verdict(time_us, threshold):
  if time_us is None or threshold is None:
    return ""
  return "MET" if time_us <= threshold else "MISSED"


def fmt(value, digits=2):
  return "-" if value is None else f"{value:.{digits}f}"


def case_name(shape, block_shape, num_n, density=None) -> str:
  name = f"{shape[0]}x{shape[1]} b{block_shape[0]}x{block_shape[1]} N{num_n}"
  return name if density is None else f"{name} d={density}"


def line_us(row: dict) -> float | None:
  """A row's time for the targets: its kernel time where it was measured, else its wall-clock
  median (smoke runs, ``--timing loop``, runs before kernel time)."""
  if row.get("error"):
    return None
  kernel_us = row.get("kernel_median_us")
  return row["median_us"] if kernel_us is None else kernel_us


def with_kernel_time(fields: dict, timer) -> dict:
  """``fields`` plus the op's device kernel time (``kernel_*``) with ``KERNEL_TIME``."""
  if KERNEL_TIME:
    calls = kernel_time.calls_for(fields["median_us"])
    fields.update(kernel_time.measure(timer, calls=calls).record_fields())
  return fields


def ratio(numerator, denominator):
  return numerator / denominator if numerator and denominator else None


def default_warpgroups(shape, block_shape, num_n, kept) -> tuple[int, float]:
  """(compute warpgroups of ``default_config`` for the case, its blocks_per_row): mean stored
  blocks per block row of a mask keeping ``kept`` of the blocks."""
  blocks_per_row = kept * (shape[1] // block_shape[1])
  config = bsr_spmm_mgpu.default_config(block_shape=tuple(block_shape), num_rows=shape[0],
                                        num_n=num_n, blocks_per_row=blocks_per_row)
  return config.compute_warpgroups, blocks_per_row


def targets(rows_in=None):
  """One row per (shape, block, N, density) of ``rows_in`` (default: this run's rows): each
  line's time (``1wg`` / ``2wg``: this kernel's variants, by their configs' compute warpgroups,
  whichever line ran them; ``mosaic-gpu``: the variant ``default_config`` picks, ``default_wg``),
  the verdicts and the ratios."""
  by_case: dict[str, dict] = {}
  for row in results if rows_in is None else rows_in:
    if row.get("density") is None or row["line"] == "dense":
      continue
    entry = by_case.setdefault(row["case"], dict(case=row["case"], n=row["n"],
                                                 density=row["density"], kept=row.get("kept"),
                                                 dense_us=row["dense_us"]))
    time_us = line_us(row)
    if row.get("block_shape") is not None:
      entry.setdefault("shape", row["shape"])
      entry.setdefault("block_shape", row["block_shape"])
    if not row["line"].startswith("mosaic-gpu"):
      entry[row["line"]] = time_us
    elif isinstance(row.get("config"), dict):
      entry[f"{row['config']['compute_warpgroups']}wg"] = time_us
  rows = []
  for entry in by_case.values():
    if entry.get("block_shape") is not None:
      entry["default_wg"], entry["blocks_per_row"] = default_warpgroups(
          entry["shape"], entry["block_shape"], entry["n"], entry["kept"] or entry["density"])
      entry["mosaic-gpu"] = entry.get(f"{entry['default_wg']}wg")
    threshold = target_us(entry["kept"] or entry["density"], entry["dense_us"])
    mgpu, triton = entry.get("mosaic-gpu"), entry.get("triton")
    torch_over_mgpu = ratio(entry.get("torch-bsr_dense_mm"), mgpu)
    rows.append(dict(
        **entry, target_us=threshold, verdict=verdict(mgpu, threshold),
        triton_verdict=verdict(triton, threshold), triton_over_mgpu=ratio(triton, mgpu),
        one_wg_over_two_wg=ratio(entry.get("1wg"), entry.get("2wg")),
        torch_over_mgpu=torch_over_mgpu,
        torch_verdict="" if torch_over_mgpu is None else
        "MET" if torch_over_mgpu >= TORCH_SPEEDUP else "MISSED"))
  return rows


def write_outputs() -> str:
  doc = dict(machine=ENV, cuda_runtime=cuda_runtime(), smoke=SMOKE,
             timing=dataclasses.asdict(TIMING),
             targets_timing="kernel time" if KERNEL_TIME else "wall-clock medians",
             tolerance=TOLERANCE, issue_ns=list(ISSUE_NS),
             target="time <= 1.3 x d x dense time + 5 us (d: kept block fraction)",
             targets=targets(), results=results)
  with open(f"{ARGS.out_dir}/bsr_mgpu.json", "w") as f:
    json.dump(doc, f, indent=1, default=str)
  table = render(doc)
  with open(f"{ARGS.out_dir}/bsr_mgpu.md", "w") as f:
    f.write(table + "\n")
  return table


def rerender(path: str) -> str:
  """``--rerender``: the targets of an earlier run's JSON rebuilt with this revision's
  ``default_config``, written to OUTDIR/bsr_mgpu_rerendered.md and .json."""
  with open(path) as f:
    doc = json.load(f)
  doc["targets"] = targets(doc["results"])
  with open(f"{ARGS.out_dir}/bsr_mgpu_rerendered.json", "w") as f:
    json.dump(doc, f, indent=1, default=str)
  table = render(doc, source=path)
  with open(f"{ARGS.out_dir}/bsr_mgpu_rerendered.md", "w") as f:
    f.write(table + "\n")
  return table


def render(doc: dict, source: str | None = None) -> str:
  """The markdown of a run's JSON document (``source``: the file it was re-rendered from)."""
  env, smoke, target_rows, rows_in = doc["machine"], doc["smoke"], doc["targets"], doc["results"]
  timing = TimingConfig(**doc["timing"])
  by_kernel = any(row.get("kernel_median_us") is not None for row in rows_in)
  method = ("device kernel time per call (experiments.kernel_time, CUPTI; every line alike), "
            "medians; beside it the wall-clock medians: " if by_kernel else "")
  issue_ns = tuple(doc.get("issue_ns") or (sorted({row["n"] for row in target_rows}) if smoke
                                           else (128, 1024)))
  versions = ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()) if v)
  issue_rows = [row for row in target_rows if row["n"] in issue_ns]
  met = sum(row["verdict"] == "MET" for row in issue_rows)
  torch_met = sum(row["torch_verdict"] == "MET" for row in target_rows)
  torch_rows = sum(row["torch_verdict"] != "" for row in target_rows)
  lines = []
  for r in rows_in:
    if r["error"]:
      lines.append(f"| {r['case']} | {r['line']} | - | - | - | - | {r['error'][:200]} |")
      continue
    kernel_range = ("-" if r.get("kernel_median_us") is None else
                    f"{fmt(r.get('kernel_p10_us'), 1)}-{fmt(r.get('kernel_p90_us'), 1)}")
    lines.append(f"| {r['case']} | {r['line']} | {fmt(r.get('kernel_median_us'), 1)} | "
                 f"{kernel_range} | "
                 f"{fmt(r['median_us'], 1)} | "
                 f"{fmt(r['p10_us'], 1)}-{fmt(r['p90_us'], 1)} | {fmt(r.get('rel_err'), 4)} | "
                 f"{r['check']} | {json.dumps(r.get('config'))} |")
  text = [
      f"# Mosaic GPU BSR SpMM ({env['device']}, {env['date']}"
      f"{', SMOKE (CPU interpret)' if smoke else ''})", "",
      *([f"Re-rendered from {source} (the timings of that run) with this revision's "
         "default_config selection.", ""] if source else []),
      f"Versions: {versions}; CUDA runtime {doc['cuda_runtime']}. bfloat16 A @ B, random block "
      f"masks. Targets by {method}"
      f"{'JaxCallTimer (smoke)' if smoke else 'JaxLoopTimer'} medians (torch: "
      f"TorchCudaTimer, CUDA events), {timing}.", "",
      f"## Targets (issue 8: time <= 1.3 x d x dense + 5 us): {met} of {len(issue_rows)} MET "
      f"(N in {issue_ns}); >= {TORCH_SPEEDUP:g}x faster than torch bsr_dense_mm: {torch_met} of "
      f"{torch_rows} MET", "",
      "Mosaic GPU: the variant `bsr_spmm_mgpu.default_config` picks for the case (wg: its compute "
      "warpgroups), given blocks/row, the mean stored blocks per block row of the mask (kept "
      "blocks / block rows): two where N is a multiple of 256, the launch has >= "
      f"{bsr_spmm_mgpu.MIN_TWO_WARPGROUP_PROGRAMS} programs of 256 columns and blocks/row >= "
      f"{bsr_spmm_mgpu.MIN_TWO_WARPGROUP_BLOCKS_PER_ROW:g}. 1wg / 2wg: this kernel with one / two "
      "compute warpgroups, both timed at every density where N >= 256 (at N = 128 only the "
      "default, one warpgroup); the Mosaic GPU column is one of them.", "",
      "| case | kept | blocks/row | dense us | target us | Mosaic GPU us | wg | verdict | 1wg us "
      "| 2wg us | 1wg / 2wg | Triton us | Triton verdict | Triton / Mosaic | torch us | "
      "torch / Mosaic | torch verdict |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      *[f"| {t['case']} | {fmt(t['kept'], 3)} | {fmt(t.get('blocks_per_row'), 1)} | "
        f"{fmt(t['dense_us'], 1)} | "
        f"{fmt(t['target_us'], 1)} | {fmt(t.get('mosaic-gpu'), 1)} | "
        f"{t.get('default_wg', '-')} | {t['verdict']} | {fmt(t.get('1wg'), 1)} | "
        f"{fmt(t.get('2wg'), 1)} | {fmt(t['one_wg_over_two_wg'])} | "
        f"{fmt(t.get('triton'), 1)} | {t['triton_verdict']} | {fmt(t['triton_over_mgpu'])} | "
        f"{fmt(t.get('torch-bsr_dense_mm'), 1)} | {fmt(t['torch_over_mgpu'])} | "
        f"{t['torch_verdict']} |"
        for t in target_rows],
      "", "## Lines", "",
      "rel err: max |output - float32 product| / max |float32 product|.", "",
      "| case | line | kernel us | kernel p10-p90 | wall median us | wall p10-p90 | rel err | "
      "check | config |",
      "|---|---|---|---|---|---|---|---|---|", *lines]
  return "\n".join(text)


def rel_err(output, expected) -> float:
  error = jnp.abs(output.astype(jnp.float32) - expected).max()
  return float(error / jnp.maximum(jnp.abs(expected).max(), 1e-30))


class CompiledLoop(bench_common.CompiledLoop):
  """``bench_common.CompiledLoop`` (every density of a group shares the padded blocks' shape),
  single calls in smoke runs; ``timed`` adds the output check."""

  def __init__(self, fn, operands):
    super().__init__(fn, operands, per_call=SMOKE)

  def timed(self, operands, expected) -> dict:
    """Times the op on ``operands`` (and its kernel time, ``with_kernel_time``) and checks its
    output against ``expected``."""
    measurement, output = self.measure(operands, TIMING)
    error = rel_err(output, expected)
    fields = dict(median_us=measurement.median_us, p10_us=measurement.p10_us,
                  p90_us=measurement.p90_us, inner=measurement.inner,
                  repeats=measurement.repeats, timing=measurement.method, rel_err=error,
                  check="ok" if error <= TOLERANCE else f"FAILED (> {TOLERANCE})")
    return with_kernel_time(fields, self.timer.with_operands([operands]))


def product(a, b):
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


# -- the lines ----------------------------------------------------------------------------------
def dense_line(shape, num_n, b):
  def run():
    a = jax.random.normal(jax.random.key(shape[0] + num_n), shape, BF16)
    fields = CompiledLoop(jnp.dot, (a, b)).timed((a, b), product(a, b))
    dense_times[(shape, num_n)] = line_us(fields)
    return dict(**fields, config="jnp.dot bf16")
  attempt(f"{shape[0]}x{shape[1]} N{num_n}", "dense", 4, run, shape=shape, n=num_n,
          density=None)


def torch_line(case, prepare, shape, block_shape, kept_blocks, **extra):
  """torch's ``bsr_dense_mm`` on the first ``kept_blocks`` blocks of the operands ``prepare()``
  returns (same values, same block shape), CUDA-event timed, its output checked as the JAX
  lines'."""
  def run():
    operands, expected = prepare()
    data, cols, offsets, b = (torch.from_dlpack(array) for array in operands)
    matrix = torch.sparse_bsr_tensor(offsets.long(), cols[:kept_blocks].long(),
                                     data[:kept_blocks], size=shape)
    timer = TorchCudaTimer([lambda: bsr_dense_mm(matrix, b)])
    output = timer.run_once()
    measurement = timer.measure(TIMING)
    reference = torch.from_dlpack(expected)
    error = float((output.float() - reference).abs().max()
                  / reference.abs().max().clamp_min(1e-30))
    fields = dict(median_us=measurement.median_us, p10_us=measurement.p10_us,
                  p90_us=measurement.p90_us, inner=measurement.inner,
                  repeats=measurement.repeats, timing=measurement.method, rel_err=error,
                  check="ok" if error <= TOLERANCE else f"FAILED (> {TOLERANCE})",
                  config=f"torch.sparse._triton_ops.bsr_dense_mm, {block_shape[0]}x"
                         f"{block_shape[1]} blocks, bfloat16")
    return with_kernel_time(fields, timer)
  extra.update(shape=shape, block_shape=block_shape, kept_blocks=kept_blocks)
  if TORCH_SKIP:
    record(case=case, line="torch-bsr_dense_mm", error=TORCH_SKIP, **extra)
    return
  attempt(case, "torch-bsr_dense_mm", 6, run, **extra)


def group(shape, block_shape, num_n, rng):
  """Every line at every density for one (shape, block shape, N): one compilation each."""
  b = jax.random.normal(jax.random.key(7 + num_n), (shape[1], num_n), BF16)
  if (shape, num_n) not in dense_times:
    dense_line(shape, num_n, b)
  masks = {d: block_mask(rng, shape, block_shape, d) for d in DENSITIES}
  nse = max(int(mask.sum()) for mask in masks.values())
  # Both variants at N >= 256 (the default picks per density: blocks per row), each compiled
  # once; below, or where no two-warpgroup config divides N, the default (one warpgroup).
  variants = {warpgroups: bsr_spmm_mgpu.default_config(
      block_shape=block_shape, num_rows=shape[0], num_n=num_n, compute_warpgroups=warpgroups)
      for warpgroups in (1, 2)}
  layout = jsparse.BSR((jnp.zeros((nse, *block_shape), BF16), jnp.zeros((nse,), jnp.int32),
                        jnp.zeros((shape[0] // block_shape[0] + 1,), jnp.int32)), shape=shape,
                       validate=False).layout
  triton_config = structured.bsr_config(layout, num_n)

  def mgpu_line(config):
    return (lambda data, cols, offsets, x: bsr_spmm_mgpu.kernel_fn(
        data, cols, offsets, x, shape=shape, config=config, interpret=SMOKE), config)

  if num_n >= TWO_WG_MIN_N and variants[2].compute_warpgroups == 2:
    lines = {f"mosaic-gpu-{w}wg": mgpu_line(config) for w, config in variants.items()}
  else:
    lines = {"mosaic-gpu": mgpu_line(bsr_spmm_mgpu.default_config(
        block_shape=block_shape, num_rows=shape[0], num_n=num_n))}
  lines["triton"] = (lambda data, cols, offsets, x: bsr_spmm.kernel_fn(
      data, cols, offsets, x, shape=shape, config=triton_config, interpret=SMOKE),
      triton_config)
  loops: dict[str, CompiledLoop] = {}
  for index, (density, mask) in enumerate(masks.items()):
    kept = float(mask.mean())
    operands = []

    def prepare():
      if not operands:
        data, cols, offsets, dense_a = bsr_operands(jax.random.key(index), mask, block_shape,
                                                    nse)
        operands.extend([(data, cols, offsets, b), product(dense_a, b)])
      return operands

    for line, (fn, config) in lines.items():
      def run(fn=fn, config=config, line=line):
        args, expected = prepare()
        if line.startswith("mosaic-gpu"):
          reason = bsr_spmm_mgpu.supports(*args, shape=shape, config=config)
          if reason is not True:
            raise ValueError(f"supports() refused: {reason}")
        first = time.time()
        if line not in loops:
          loops[line] = CompiledLoop(fn, args)
        compile_s = time.time() - first
        return dict(**loops[line].timed(args, expected), compile_s=compile_s,
                    config=dataclasses.asdict(config))
      attempt(case_name(shape, block_shape, num_n, density), line,
              3 if line in loops else 8, run, shape=shape, block_shape=block_shape,
              n=num_n, density=density, kept=kept, nse_padded=nse,
              dense_us=dense_times.get((shape, num_n)))
    torch_line(case_name(shape, block_shape, num_n, density), prepare, shape, block_shape,
               int(mask.sum()), n=num_n, density=density, kept=kept,
               dense_us=dense_times.get((shape, num_n)))


if ARGS.rerender:
  print(rerender(ARGS.rerender))
else:
  rng = np.random.default_rng(0)
  for block_shape in BLOCK_SHAPES:
    for shape in SHAPES:
      for num_n in NS:
        group(shape, block_shape, num_n, rng)
  print(write_outputs())
