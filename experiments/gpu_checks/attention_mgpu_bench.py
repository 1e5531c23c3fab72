"""Timings of the Mosaic GPU block-sparse attention kernel (issue 9), run by attention_mgpu.sh.

python3 -P experiments/gpu_checks/attention_mgpu_bench.py OUTDIR --budget-s S [--smoke]

bf16, batch 4, 16 query and 16 kv heads, seq 8192, 128 x 128 mask blocks, head dims 64 then 128;
per head dim, in this order under a deadline:
  cuDNN dense (``jax.nn.dot_product_attention(implementation="cudnn")``); this kernel
  (``block_sparse_attention_mgpu``) and the Triton kernel (``block_sparse_attention``) at kept
  densities 1.0, 0.5, 0.1, 0.05 (random kept blocks per query block, the same lists for both,
  padded to one length so each kernel compiles once); at head dim 64 the public op
  ``jsparse.block_sparse_attention(impl="pallas")`` at density 0.1 (the registered lowering: the
  row says which kernel ``choose_kernel`` picked and what the lowered HLO calls); cuDNN causal,
  then both kernels causal (every block up to the diagonal kept); torch's
  ``scaled_dot_product_attention`` dense and causal; compiled FlexAttention
  (``torch.compile(flex_attention)``) on the same kept lists (as "full" blocks: no mask_mod
  inside them) at 0.5, 0.1, 0.05, 1.0, and causal (``create_block_mask``); this kernel with
  the query tiles a program of ``TILES`` other than the default's for the mask (at
  ``TILES_MASKS``: the next tile's Q and K/V loads overlap the current tile); JAX's attention_mgpu dense last (float16, which it requires, q
  pre-scaled by 1/sqrt(D): it applies no scale).
A causal line runs even where ``supports()`` refuses it for the CUDA runtime (ptxas
miscompilation, as attention_mgpu), noted in its row. Every output is checked before it is
timed: max |error| against the dense masked reference
(``reference_fn`` in float32) on batch 0, heads 0-1 (the whole problem's scores would not fit),
and max |difference| from cuDNN (dense and causal lines, SDPA), this kernel (the Triton,
public-op, FlexAttention and extra-config lines) on the whole output. Timing (``--timing``):
``kernel`` (the default) times every line, JAX and torch alike, by device kernel time per call
(``experiments.kernel_time``: each call alone in a CUPTI trace, no Python dispatch), keeping
each line's wall-clock median (``wall_median_us``); ``loop`` (smoke runs, and the runs before
2026-11-27) uses the wall-clock medians: ``JaxLoopTimer`` (the op back to back in one jitted
loop), torch lines ``TorchCudaTimer`` (CUDA events), as attention_bench.py.
Outputs, rewritten after every line (a killed run keeps what it measured):
OUTDIR/attention_mgpu.json (every row, machine, versions, CUDA runtime, timing, date) and
OUTDIR/attention_mgpu.md (the issue's targets, MET / MISSED, then a table with times, ratios to
cuDNN and to the Triton kernel); the table is printed at the end.
--smoke: tiny shapes, both kernels in interpret mode on the CPU, one untimed-loop call per
measurement (checks this script, not the kernels); torch lines are recorded as skipped when
torch or a CUDA device for it is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import kernel_time, machine
from experiments.gpu_checks import bench_common
from experiments.gpu_checks.bench_common import BenchLog, cuda_runtime
from experiments.timing import TimingConfig, TorchCudaTimer
from pallas_kernels import block_sparse_attention as triton_attention
from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention

DENSITIES = (1.0, 0.5, 0.1, 0.05)
PUBLIC_OP_DENSITY = 0.1  # the public op's line (head dim 64)
# Query tiles a program of the extra lines (``tiles_lines``) and the masks they run on.
TILES = (1, 2, 8)
TILES_MASKS = (0.05, 0.1, 0.5, "causal")
TOLERANCE = 0.03  # max |error| of a bf16 output of these shapes (cuDNN's is ~1e-3)
KERNEL_TIME_NOTE = ("Times: device kernel time per call (experiments.kernel_time), medians; "
                    "the JSON's wall_median_us: ")
# As attention_bench.py: samples of >= 20 ms (a JaxLoopTimer sample includes one dispatch).
TIMING = TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.02, max_total_s=0.3)


def parse_args():
  parser = argparse.ArgumentParser()
  parser.add_argument("out_dir")
  parser.add_argument("--budget-s", type=float, default=150.0)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--timing", choices=("kernel", "loop"), default="kernel",
                      help="what the targets use: device kernel time per call (default; smoke "
                           "runs: loop) or the wall-clock medians")
  return parser.parse_args()


ARGS = parse_args()
SMOKE = ARGS.smoke
KERNEL_TIME = ARGS.timing == "kernel" and not SMOKE  # the interpreter has no kernels to trace
if SMOKE:  # the public op's pallas lowering on the CPU (interpret mode); read by ``import jsparse``
  os.environ["JSPARSE_PALLAS_INTERPRET"] = "1"

import jsparse  # noqa: E402  (after JSPARSE_PALLAS_INTERPRET)
from jsparse._gpu import attention as dispatch  # noqa: E402
from jsparse.ops.attention import AttentionLayout  # noqa: E402

try:
  import torch
  import torch.nn.functional as F
  from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
  TORCH_SKIP = None if torch.cuda.is_available() else "skipped: torch sees no CUDA device"
except Exception as error:  # noqa: BLE001  (the CPU venv has no torch)
  TORCH_SKIP = f"skipped: torch not importable ({type(error).__name__}: {error})"[:200]
ENV = machine.detect().asdict()
if SMOKE:
  BATCH, HEADS, SEQ, BLOCK, DIMS, DENSITIES = 1, 2, 256, 128, (64,), (1.0, 0.5)
  PUBLIC_OP_DENSITY, TILES, TILES_MASKS = 0.5, (2,), (0.5, "causal")
  TIMING = TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0)
else:
  BATCH, HEADS, SEQ, BLOCK, DIMS = 4, 16, 8192, 128, (64, 128)
NB = SEQ // BLOCK
REF_HEADS = min(2, HEADS)
rng = np.random.default_rng(0)
LOG = BenchLog(ARGS.budget_s, lambda: write_outputs(), widths=(14, 26))
results, record, attempt, DEADLINE = LOG.rows, LOG.record, LOG.attempt, LOG.deadline
times, outputs = {}, {}


# -- masks --------------------------------------------------------------------------------------
def kept_lists(density=None, causal=False):
  """int32 (indices [H, NB, max_kept], counts [H, NB]): per head and query block
  ``round(density * NB)`` random kept blocks (all blocks up to the diagonal when causal),
  ascending, padded with the last kept index to the largest count (as
  ``jsparse.BlockMask.from_dense`` compacts them; the Mosaic GPU kernel's default tiles a program
  follow that width)."""
  dense = np.zeros((HEADS, NB, NB), bool)
  for h, i in np.ndindex(HEADS, NB):
    if causal:
      dense[h, i, :i + 1] = True
    else:
      dense[h, i, rng.choice(NB, max(1, round(density * NB)), replace=False)] = True
  counts = dense.sum(-1).astype(np.int32)
  indices = np.zeros((HEADS, NB, counts.max()), np.int32)
  for h, i in np.ndindex(HEADS, NB):
    kept = np.flatnonzero(dense[h, i])
    indices[h, i, :kept.size] = kept
    indices[h, i, kept.size:] = kept[-1]
  return jnp.asarray(indices), jnp.asarray(counts)


MASKS = {d: kept_lists(d) for d in DENSITIES}
MASKS["causal"] = kept_lists(causal=True)


def kept_fraction(name):
  return float(MASKS[name][1].sum()) / (HEADS * NB * NB)


# -- recording ----------------------------------------------------------------------------------
def ratio(numerator, denominator):
  return numerator / denominator if numerator and denominator else None


def targets():
  """The issue's targets from what is measured so far: (case, check, value, threshold, sense),
  MET when ``value <= threshold`` (sense "<=") or ``>=`` (sense ">="); no threshold: a diagnostic.
  """
  rows = []
  for d in DIMS:
    t = lambda line, name, d=d: times.get((d, line, name))
    dense = t("mgpu", 1.0)
    rows += [
        (f"D{d}", "dense: this / cuDNN <= 1.2", ratio(dense, t("cudnn", 1.0)), 1.2, "<="),
        (f"D{d}", "dense: this / torch SDPA <= 1.2", ratio(dense, t("sdpa", 1.0)), 1.2, "<="),
        (f"D{d}", "causal: this / cuDNN causal <= 1.15",
         ratio(t("mgpu", "causal"), t("cudnn", "causal")), 1.15, "<="),
        (f"D{d}", "causal: this / torch SDPA causal (diagnostic)",
         ratio(t("mgpu", "causal"), t("sdpa", "causal")), None, ""),
        (f"D{d}", "dense: FlexAttention / this (diagnostic)", ratio(t("flex", 1.0), dense), None,
         ""),
        (f"D{d}", "causal: FlexAttention / this (diagnostic)",
         ratio(t("flex", "causal"), t("mgpu", "causal")), None, ""),
        (f"D{d}", "dense: this / attention_mgpu (f16) (same kernel family, ~1)",
         ratio(dense, t("attention_mgpu", 1.0)), None, "")]
    for density in DENSITIES[1:]:
      kept = kept_fraction(density)
      ours = t("mgpu", density)
      rows += [
          (f"D{d}", f"d={density} (kept {kept:.3f}): this / (1.2 x kept x this dense + 10 us) "
           "<= 1", ratio(ours, 1.2 * kept * dense + 10 if dense else None), 1.0, "<="),
          (f"D{d}", f"d={density}: FlexAttention / this >= 1.3", ratio(t("flex", density), ours),
           1.3, ">="),
          (f"D{d}", f"d={density}: this / (kept x this dense) (sparsity efficiency)",
           ratio(ours, kept * (dense or 0)), None, "")]
    for tiles in TILES:
      for name in TILES_MASKS:
        if (d, f"mgpu-tiles{tiles}", name) not in times:  # the default's count, or not run
          continue
        rows.append((f"D{d}", f"{name}: this with {tiles} tiles a program / default "
                     f"(diagnostic)", ratio(t(f"mgpu-tiles{tiles}", name), t("mgpu", name)),
                     None, ""))
        if name not in ("causal", 1.0):
          rows.append((f"D{d}", f"d={name}: FlexAttention / this with {tiles} tiles a program "
                       f"(diagnostic)", ratio(t("flex", name), t(f"mgpu-tiles{tiles}", name)),
                       None, ""))
  rows.append((f"D{DIMS[0]}", f"d={PUBLIC_OP_DENSITY}: public op (impl=pallas) / this kernel "
               "(diagnostic, ~1)", ratio(times.get((DIMS[0], "public-op", PUBLIC_OP_DENSITY)),
                                         times.get((DIMS[0], "mgpu", PUBLIC_OP_DENSITY))),
               None, ""))
  return rows


def verdict(value, threshold, sense):
  if threshold is None or value is None:
    return ""
  return "MET" if (value <= threshold if sense == "<=" else value >= threshold) else "MISSED"


def fmt(value, digits=2):
  return "-" if value is None else f"{value:.{digits}f}"


def write_outputs():
  with open(f"{ARGS.out_dir}/attention_mgpu.json", "w") as f:
    json.dump(dict(machine=ENV, cuda_runtime=cuda_runtime(), smoke=SMOKE,
                   timing=dataclasses.asdict(TIMING), tolerance=TOLERANCE,
                   shapes=dict(batch=BATCH, heads=HEADS, kv_heads=HEADS, seq=SEQ, block=BLOCK,
                               head_dims=DIMS, densities=DENSITIES),
                   targets=[dict(case=c, check=k, value=v, threshold=th, sense=sense,
                                 verdict=verdict(v, th, sense))
                            for c, k, v, th, sense in targets()],
                   results=results), f, indent=1, default=str)
  versions = ", ".join(f"{k} {v}" for k, v in sorted(ENV["versions"].items()) if v)
  target_lines = [f"| {case} | {check} | {fmt(value)} {verdict(value, threshold, sense)} |"
                  for case, check, value, threshold, sense in targets()]
  lines = []
  for r in results:
    if r.get("error"):
      lines.append(f"| {r['case']} | {r['line']} | - | - | - | - | - | - | {r['error'][:200]} |")
      continue
    lines.append(
        f"| {r['case']} | {r['line']} | {fmt(r['median_us'], 1)} | "
        f"{fmt(r['p10_us'], 1)}-{fmt(r['p90_us'], 1)} | {fmt(r.get('vs_cudnn'))} | "
        f"{fmt(r.get('triton_over_this'))} | {fmt(r.get('max_abs_err_vs_reference'), 4)} | "
        f"{fmt(r.get('max_abs_diff_vs_baseline'), 4)} | {r.get('check', '')} {r.get('note', '')} |")
  text = [
      f"# Mosaic GPU block-sparse attention ({ENV['device']}, {ENV['date']}"
      f"{', SMOKE (CPU interpret)' if SMOKE else ''})", "",
      f"Versions: {versions}; CUDA runtime {cuda_runtime()}. bf16, batch {BATCH}, {HEADS} query "
      f"and kv heads, seq {SEQ}, {BLOCK}x{BLOCK} mask blocks. "
      f"{KERNEL_TIME_NOTE if KERNEL_TIME else ''}"
      f"{'JaxCallTimer (smoke)' if SMOKE else 'JaxLoopTimer'} medians, {TIMING}.",
      "", "## Targets (issue 9)", "", "| case | check | ratio |", "|---|---|---|",
      *target_lines, "", "## Lines", "",
      "vs cuDNN: time / cuDNN's (dense for every density, causal for causal). Triton/this: the "
      "Triton kernel's time / this kernel's on the same mask. err: max |error| vs the float32 "
      "masked reference on batch 0, heads 0-1; diff: max |difference| from cuDNN (dense, causal,"
      " SDPA) or from this kernel (Triton, public-op, FlexAttention, tiles-a-program lines) over the "
      "whole output. torch lines: TorchCudaTimer (CUDA events) medians; FlexAttention's first "
      "call (compilation) in first_call_s.", "",
      "| case | line | median us | p10-p90 | vs cuDNN | Triton/this | err | diff | check |",
      "|---|---|---|---|---|---|---|---|---|", *lines]
  table = "\n".join(text)
  with open(f"{ARGS.out_dir}/attention_mgpu.md", "w") as f:
    f.write(table + "\n")
  return table


# -- timing -------------------------------------------------------------------------------------
class CompiledLoop(bench_common.CompiledLoop):
  """``bench_common.CompiledLoop`` (the masks of every density share one padded shape) at this
  script's timing settings, single calls in smoke runs."""

  def __init__(self, fn, operands):
    super().__init__(fn, operands, per_call=SMOKE)

  def measure(self, operands, config=TIMING):
    return super().measure(operands, config)


def max_diff(a, b):
  return float(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)).max())


reference = jax.jit(mgpu_attention.reference_fn, static_argnames=("block_size", "causal"))


def reference_error(output, operands, name):
  """max |output - reference| on batch 0, heads 0..REF_HEADS-1."""
  q, k, v = (x[:1, :, :REF_HEADS].astype(jnp.float32) for x in operands)
  indices, counts = MASKS[name]
  expected = reference(q, k, v, indices[:REF_HEADS], counts[:REF_HEADS],
                       block_size=(BLOCK, BLOCK), causal=name == "causal")
  return max_diff(output[:1, :, :REF_HEADS], expected)


def timing_fields(measurement, timer) -> dict:
  """A line's timing fields: its wall-clock measurement; with ``KERNEL_TIME`` its ``median_us``
  (what ``times``, the ratios and the targets read) is the device kernel time per call
  (``experiments.kernel_time``), the wall-clock median kept as ``wall_median_us``."""
  fields = dict(median_us=measurement.median_us, p10_us=measurement.p10_us,
                p90_us=measurement.p90_us, inner=measurement.inner,
                repeats=measurement.repeats, timing=measurement.method)
  return kernel_time.as_median(fields, timer) if KERNEL_TIME else fields


def timed(key, loop, operands, *, check_against=None, reference_of=None):
  """Checks, then times one line: fields for ``record``."""
  measurement, output = loop.measure(operands)
  fields = timing_fields(measurement, loop.timer.with_operands([operands]))
  times[key] = fields["median_us"]
  outputs[key] = output
  head_dim, _, name = key
  errors = []
  if reference_of is not None:
    fields["max_abs_err_vs_reference"] = reference_error(output, operands[:3], reference_of)
    errors.append(fields["max_abs_err_vs_reference"])
  if check_against is not None and check_against in outputs:
    fields["max_abs_diff_vs_baseline"] = max_diff(output, outputs[check_against])
    fields["baseline"] = "/".join(map(str, check_against))
    errors.append(fields["max_abs_diff_vs_baseline"])
  fields["check"] = "ok" if all(e <= TOLERANCE for e in errors) else f"FAILED (> {TOLERANCE})"
  cudnn = times.get((head_dim, "cudnn", "causal" if name == "causal" else 1.0))
  fields["vs_cudnn"] = ratio(fields["median_us"], cudnn)
  return fields


# -- the lines ----------------------------------------------------------------------------------
def info(head_dim, name):
  return dict(head_dim=head_dim, batch=BATCH, heads=HEADS, seq=SEQ, block=BLOCK,
              density=kept_fraction(name), mask=str(name))


def cudnn_line(head_dim, operands, causal):
  name = "causal" if causal else 1.0
  def run():
    fn = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal,
                                                      implementation="cudnn")
    return timed((head_dim, "cudnn", name), CompiledLoop(fn, operands), operands,
                 reference_of=name)
  if SMOKE:
    record(case=f"D{head_dim} {name}", line="jax-cudnn", error="skipped: no GPU (smoke)")
    return
  attempt(f"D{head_dim} {name}", "jax-cudnn", 5, run, **info(head_dim, name))


def sparse_lines(head_dim, operands, names):
  """This kernel, then the Triton kernel, per mask; one compilation each per causal or not."""
  causal = names[0] == "causal"
  loops = {}
  mgpu_fn = lambda q, k, v, i, c: mgpu_attention.kernel_fn(
      q, k, v, i, c, block_size=(BLOCK, BLOCK), causal=causal, interpret=SMOKE)
  triton_config = triton_attention.default_config(
      batch=BATCH, num_heads=HEADS, q_len=SEQ, head_dim=head_dim, block_size=(BLOCK, BLOCK),
      max_kept=NB, num_kv_blocks=NB, causal=causal)
  triton_fn = lambda q, k, v, i, c: triton_attention.kernel_fn(
      q, k, v, i, c, block_size=(BLOCK, BLOCK), causal=causal, config=triton_config,
      interpret=SMOKE)
  for name in names:
    args = (*operands, *MASKS[name])
    baseline = (head_dim, "cudnn", name) if name in (1.0, "causal") else None
    for line, fn, label in (("mgpu", mgpu_fn, "jsparse-mosaic-gpu"),
                            ("triton", triton_fn, "jsparse-triton")):
      # One compilation per kept-list width: the masks are compacted to their largest count.
      loop_key = (line, MASKS[name][0].shape)

      def run(line=line, fn=fn, args=args, name=name, baseline=baseline, loop_key=loop_key):
        note = ""
        if line == "mgpu":
          reason = mgpu_attention.supports(*args, block_size=(BLOCK, BLOCK), causal=causal)
          if reason is not True and "miscompiled" not in reason:
            raise ValueError(f"supports() refused: {reason}")
          if reason is not True:  # run anyway: the output check shows whether it is wrong
            note = f"(supports() refuses: {reason})"
        first = time.time()
        if loop_key not in loops:
          loops[loop_key] = CompiledLoop(fn, args)
        compile_s = time.time() - first
        fields = timed((head_dim, line, name), loops[loop_key], args, reference_of=name,
                       check_against=baseline if line == "mgpu" else (head_dim, "mgpu", name))
        fields["triton_over_this"] = ratio(times.get((head_dim, "triton", name)),
                                           times.get((head_dim, "mgpu", name)))
        if line == "triton":  # fill in this kernel's row, recorded before the Triton time
          for row in results:
            if (row.get("head_dim"), row.get("line"), row.get("mask")) == (
                head_dim, "jsparse-mosaic-gpu", str(name)) and not row["error"]:
              row["triton_over_this"] = fields["triton_over_this"]
        config = (mgpu_config(head_dim, name) if line == "mgpu" else triton_config)
        return dict(**fields, compile_s=compile_s, config=dataclasses.asdict(config), note=note)
      attempt(f"D{head_dim} {name}", label, 3 if loop_key in loops else 12, run,
              **info(head_dim, name))


def attention_mgpu_line(head_dim, operands):
  """JAX's own FA3 kernel, dense, float16 (its shared-memory tiles are float16), q pre-scaled
  (it applies no 1/sqrt(D))."""
  if SMOKE:
    record(case=f"D{head_dim} 1.0", line="jax-attention-mgpu", error="skipped: no GPU (smoke)")
    return

  def run():
    from jax.experimental.pallas.ops.gpu import attention_mgpu
    q, k, v = operands
    half = (q * (1.0 / math.sqrt(head_dim)), k, v)
    half = tuple(x.astype(jnp.float16) for x in half)
    config = attention_mgpu.TuningConfig(block_q=64, block_kv=128, max_concurrent_steps=2)
    fn = lambda q, k, v: attention_mgpu.attention(q, k, v, config)
    return dict(**timed((head_dim, "attention_mgpu", 1.0), CompiledLoop(fn, half), half,
                        check_against=(head_dim, "cudnn", 1.0)),
                dtype="float16", config="64x128 steps2")
  attempt(f"D{head_dim} 1.0", "jax-attention-mgpu", 8, run, **info(head_dim, 1.0))


def public_op_line(head_dim, operands, name):
  """``jsparse.block_sparse_attention(impl="pallas")``: the registered lowering, whichever kernel
  ``choose_kernel`` picks (the Mosaic GPU one on an H100), checked against this kernel."""
  def run():
    indices, counts = MASKS[name]
    args = (*operands, indices, counts)
    choice = dispatch.kernel_choice()
    kernel, why = dispatch.choose_kernel(
        args, AttentionLayout(block_size=(BLOCK, BLOCK), causal=False, scale=1.0),
        interpret=SMOKE, capability=None if SMOKE else dispatch.cuda_capability(), choice=choice)

    def fn(q, k, v, i, c):
      mask = jsparse.BlockMask(i, c, (BLOCK, BLOCK), NB)
      return jsparse.block_sparse_attention(q, k, v, mask, impl="pallas")
    hlo = jax.jit(fn).lower(*args).as_text()
    lowered_to = ("mosaic_gpu" if "mosaic_gpu" in hlo else "triton" if "triton" in hlo
                  else "neither (interpret mode)")
    fields = timed((head_dim, "public-op", name), CompiledLoop(fn, args), args,
                   reference_of=name, check_against=(head_dim, "mgpu", name))
    return dict(**fields, kernel=kernel, why=why, choice=choice, lowered_to=lowered_to,
                note=f"{kernel}: {why}; HLO calls {lowered_to}")
  attempt(f"D{head_dim} {name}", "jsparse public op (pallas)", 12, run, **info(head_dim, name))


def mgpu_config(head_dim, name):
  """The Mosaic GPU kernel's default launch for the mask ``name`` (as ``kernel_fn`` picks it)."""
  return mgpu_attention.default_config(
      head_dim=head_dim, block_size=(BLOCK, BLOCK), q_len=SEQ,
      max_kept=MASKS[name][0].shape[-1], causal=name == "causal")


def tiles_lines(head_dim, operands):
  """This kernel with ``tiles_per_program`` in ``TILES`` at ``TILES_MASKS`` other than the
  default's for the mask: several query tiles a program, the memory warpgroup loading the next
  tile's Q and K/V while the current one computes (one program per SM: a sparse tile's start
  and end are not hidden by another program's work)."""
  for tiles in TILES:
    loops = {}
    for name in TILES_MASKS:
      causal = name == "causal"
      default = mgpu_config(head_dim, name)
      if tiles == default.tiles_per_program:
        continue
      config = dataclasses.replace(default, tiles_per_program=tiles)
      def run(name=name, causal=causal, config=config, tiles=tiles, loops=loops):
        args = (*operands, *MASKS[name])
        reason = mgpu_attention.supports(*args, block_size=(BLOCK, BLOCK), causal=causal,
                                         config=config)
        if reason is not True:
          raise ValueError(f"supports() refused: {reason}")
        loop_key = (causal, config, args[3].shape)  # one compilation per kept-list width
        if loop_key not in loops:
          loops[loop_key] = CompiledLoop(
              lambda q, k, v, i, c: mgpu_attention.kernel_fn(
                  q, k, v, i, c, block_size=(BLOCK, BLOCK), causal=causal, config=config,
                  interpret=SMOKE), args)
        fields = timed((head_dim, f"mgpu-tiles{tiles}", name), loops[loop_key], args,
                       reference_of=name, check_against=(head_dim, "mgpu", name))
        fields["vs_default"] = ratio(fields["median_us"], times.get((head_dim, "mgpu", name)))
        return dict(**fields, config=dataclasses.asdict(config),
                    note=f"{tiles} tiles a program: {fmt(fields['vs_default'])}x the default "
                         f"config's time")
      attempt(f"D{head_dim} {name}", f"jsparse-mosaic-gpu tiles{tiles}",
              3 if loops else 10, run, **info(head_dim, name))


# -- torch: SDPA and FlexAttention on the same inputs and kept lists ----------------------------
def torch_timed(key, fn, *, check_against):
  """Times a torch call (CUDA events); its [B, H, S, D] output against a JAX [B, S, H, D] one."""
  timer = TorchCudaTimer([fn])
  output = timer.run_once()
  fields = timing_fields(timer.measure(TIMING), timer)
  times[key] = fields["median_us"]
  head_dim, _, name = key
  ours = outputs.get(check_against)
  if ours is not None:
    fields["max_abs_diff_vs_baseline"] = float(
        (torch.from_dlpack(ours).permute(0, 2, 1, 3).float() - output.float()).abs().max())
    fields["baseline"] = "/".join(map(str, check_against))
    fields["check"] = ("ok" if fields["max_abs_diff_vs_baseline"] <= TOLERANCE
                       else f"FAILED (> {TOLERANCE})")
  cudnn = times.get((head_dim, "cudnn", "causal" if name == "causal" else 1.0))
  fields["vs_cudnn"] = ratio(fields["median_us"], cudnn)
  return fields


def torch_skipped(head_dim, names, line):
  for name in names:
    record(case=f"D{head_dim} {name}", line=line, error=TORCH_SKIP, **info(head_dim, name))


def sdpa_lines(head_dim, qkv):
  """torch's ``scaled_dot_product_attention`` (its flash / cuDNN backend), dense and causal."""
  for name in (1.0, "causal"):
    def run(name=name):
      causal = name == "causal"
      return torch_timed((head_dim, "sdpa", name),
                         lambda: F.scaled_dot_product_attention(*qkv, is_causal=causal),
                         check_against=(head_dim, "cudnn", name))
    attempt(f"D{head_dim} {name}", "torch-sdpa", 3, run, **info(head_dim, name))


def flex_block_mask(name):
  """The kept blocks as "full" blocks (no mask_mod inside them, FlexAttention's fastest path);
  causal through ``create_block_mask`` (full blocks below the diagonal, masked diagonal)."""
  if name == "causal":
    return create_block_mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, None, None, SEQ, SEQ,
                             device="cuda", BLOCK_SIZE=BLOCK)
  indices, counts = MASKS[name]
  # FlexAttention's lists span every key block: pad the compact ones with their last index.
  indices = jnp.pad(indices, ((0, 0), (0, 0), (0, NB - indices.shape[-1])), mode="edge")
  full_indices = torch.from_dlpack(indices).unsqueeze(0).contiguous()  # [1, H, nqb, NB]
  full_counts = torch.from_dlpack(counts).unsqueeze(0).contiguous()  # [1, H, nqb]
  return BlockMask.from_kv_blocks(torch.zeros_like(full_counts), torch.zeros_like(full_indices),
                                  full_counts, full_indices, BLOCK_SIZE=BLOCK,
                                  seq_lengths=(SEQ, SEQ))


FLEX = []  # torch.compile(flex_attention), built on first use


def flex_lines(head_dim, qkv, names):
  """Compiled FlexAttention (attention_bench.py's round 2: first call 4-6 s at head dim 64,
  2.5 s at 128; the padded lists of every density share one compilation; causal, with a
  mask_mod, compiles again, ~3 s)."""
  compiled = set()
  for name in names:
    def run(name=name):
      if not FLEX:
        FLEX.append(torch.compile(flex_attention, dynamic=False))
      block_mask = flex_block_mask(name)
      first = time.time()
      FLEX[0](*qkv, block_mask=block_mask)
      torch.cuda.synchronize()
      first_call_s = time.time() - first
      compiled.add(name == "causal")
      fields = torch_timed((head_dim, "flex", name),
                           lambda: FLEX[0](*qkv, block_mask=block_mask),
                           check_against=(head_dim, "mgpu", name))
      flex_over_this = ratio(fields["median_us"], times.get((head_dim, "mgpu", name)))
      return dict(**fields, first_call_s=first_call_s, flex_over_this=flex_over_this,
                  note=f"FlexAttention / this {fmt(flex_over_this)}; first call "
                       f"{first_call_s:.1f} s")
    need = 3 if (name == "causal") in compiled else (25 if not FLEX else 10)
    attempt(f"D{head_dim} {name}", "torch-flex", need, run, **info(head_dim, name))


for head_dim in DIMS:
  operands = tuple(jax.random.normal(jax.random.key(10 + i), (BATCH, SEQ, HEADS, head_dim),
                                     jnp.bfloat16) for i in range(3))
  cudnn_line(head_dim, operands, causal=False)
  sparse_lines(head_dim, operands, DENSITIES)
  if head_dim == DIMS[0]:
    public_op_line(head_dim, operands, PUBLIC_OP_DENSITY)
  cudnn_line(head_dim, operands, causal=True)
  sparse_lines(head_dim, operands, ("causal",))
  flex_names = DENSITIES[1:] + (1.0, "causal")
  if TORCH_SKIP:
    torch_skipped(head_dim, (1.0, "causal"), "torch-sdpa")
    torch_skipped(head_dim, flex_names, "torch-flex")
  else:
    qkv = tuple(torch.from_dlpack(x).permute(0, 2, 1, 3).contiguous() for x in operands)
    sdpa_lines(head_dim, qkv)
    flex_lines(head_dim, qkv, flex_names)
    del qkv
    torch.cuda.empty_cache()
  tiles_lines(head_dim, operands)
  attention_mgpu_line(head_dim, operands)
  del operands
  outputs.clear()  # device memory for the next head dim

print(write_outputs())
