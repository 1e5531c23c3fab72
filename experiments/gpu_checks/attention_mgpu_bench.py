"""Timings of the Mosaic GPU block-sparse attention kernel (issue 9), run by attention_mgpu.sh.

python3 -P experiments/gpu_checks/attention_mgpu_bench.py OUTDIR --budget-s S [--smoke]

bf16, batch 4, 16 query and 16 kv heads, seq 8192, 128 x 128 mask blocks, head dims 64 then 128;
per head dim, in this order under a deadline:
  cuDNN dense (``jax.nn.dot_product_attention(implementation="cudnn")``); this kernel
  (``block_sparse_attention_mgpu``) and the Triton kernel (``block_sparse_attention``) at kept
  densities 1.0, 0.5, 0.1, 0.05 (random kept blocks per query block, the same lists for both,
  padded to one length so each kernel compiles once); JAX's attention_mgpu dense (float16, which
  it requires, q pre-scaled by 1/sqrt(D): it applies no scale); cuDNN causal, then both kernels
  causal (every block up to the diagonal kept).
A causal line runs even where ``supports()`` refuses it for the CUDA runtime (ptxas
miscompilation, as attention_mgpu), noted in its row. Every output is checked before it is
timed: max |error| against the dense masked reference
(``reference_fn`` in float32) on batch 0, heads 0-1 (the whole problem's scores would not fit),
and max |difference| from cuDNN (dense and causal lines) or this kernel (the Triton lines) on
the whole output. Timing: ``JaxLoopTimer`` (device-side: the op back to back in one jitted loop,
medians), as attention_bench.py.
Outputs, rewritten after every line (a killed run keeps what it measured):
OUTDIR/attention_mgpu.json (every row, machine, versions, CUDA runtime, timing, date) and
OUTDIR/attention_mgpu.md (the issue's targets, then a table with times, ratios to cuDNN and to
the Triton kernel); the table is printed at the end.
--smoke: tiny shapes, both kernels in interpret mode on the CPU, one untimed-loop call per
measurement (checks this script, not the kernels).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from experiments import machine
from experiments.timing import JaxCallTimer, JaxLoopTimer, TimingConfig
from pallas_kernels import block_sparse_attention as triton_attention
from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention

DENSITIES = (1.0, 0.5, 0.1, 0.05)
TOLERANCE = 0.03  # max |error| of a bf16 output of these shapes (cuDNN's is ~1e-3)
# As attention_bench.py: samples of >= 20 ms (a JaxLoopTimer sample includes one dispatch).
TIMING = TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.02, max_total_s=0.3)


def parse_args():
  parser = argparse.ArgumentParser()
  parser.add_argument("out_dir")
  parser.add_argument("--budget-s", type=float, default=150.0)
  parser.add_argument("--smoke", action="store_true")
  return parser.parse_args()


ARGS = parse_args()
SMOKE = ARGS.smoke
DEADLINE = time.time() + ARGS.budget_s
ENV = machine.detect().asdict()
if SMOKE:
  BATCH, HEADS, SEQ, BLOCK, DIMS, DENSITIES = 1, 2, 256, 128, (64,), (1.0, 0.5)
  TIMING = TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0)
else:
  BATCH, HEADS, SEQ, BLOCK, DIMS = 4, 16, 8192, 128, (64, 128)
NB = SEQ // BLOCK
REF_HEADS = min(2, HEADS)
rng = np.random.default_rng(0)
results, times, outputs, started = [], {}, {}, time.time()


def cuda_runtime():
  from jax._src.lib import cuda_versions
  try:
    return cuda_versions.cuda_runtime_get_version() if cuda_versions else None
  except Exception:  # noqa: BLE001
    return None


# -- masks --------------------------------------------------------------------------------------
def kept_lists(density=None, causal=False):
  """int32 (indices [H, NB, NB], counts [H, NB]): per head and query block
  ``round(density * NB)`` random kept blocks (all blocks up to the diagonal when causal),
  ascending, padded to NB with the last kept index."""
  dense = np.zeros((HEADS, NB, NB), bool)
  for h, i in np.ndindex(HEADS, NB):
    if causal:
      dense[h, i, :i + 1] = True
    else:
      dense[h, i, rng.choice(NB, max(1, round(density * NB)), replace=False)] = True
  counts = dense.sum(-1).astype(np.int32)
  indices = np.zeros((HEADS, NB, NB), np.int32)
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
  """The issue's targets for this kernel, from what is measured so far."""
  rows = []
  for d in DIMS:
    t = lambda line, name, d=d: times.get((d, line, name))
    rows += [
        (f"D{d}", "dense: this / cuDNN <= 1.2", ratio(t("mgpu", 1.0), t("cudnn", 1.0)), 1.2),
        (f"D{d}", "causal: this / cuDNN causal <= 1.15",
         ratio(t("mgpu", "causal"), t("cudnn", "causal")), 1.15),
        (f"D{d}", "dense: this / attention_mgpu (f16) (same kernel family, ~1)",
         ratio(t("mgpu", 1.0), t("attention_mgpu", 1.0)), None)]
    for density in DENSITIES[1:]:
      rows.append((f"D{d}", f"d={density}: this / (kept x this dense) (sparsity efficiency)",
                   ratio(t("mgpu", density), kept_fraction(density) * (t("mgpu", 1.0) or 0)),
                   None))
  return rows


def fmt(value, digits=2):
  return "-" if value is None else f"{value:.{digits}f}"


def write_outputs():
  with open(f"{ARGS.out_dir}/attention_mgpu.json", "w") as f:
    json.dump(dict(machine=ENV, cuda_runtime=cuda_runtime(), smoke=SMOKE,
                   timing=dataclasses.asdict(TIMING), tolerance=TOLERANCE,
                   shapes=dict(batch=BATCH, heads=HEADS, kv_heads=HEADS, seq=SEQ, block=BLOCK,
                               head_dims=DIMS, densities=DENSITIES),
                   targets=[dict(case=c, check=k, value=v, threshold=th)
                            for c, k, v, th in targets()],
                   results=results), f, indent=1, default=str)
  versions = ", ".join(f"{k} {v}" for k, v in sorted(ENV["versions"].items()) if v)
  target_lines = [
      f"| {case} | {check} | {fmt(value)} "
      f"{'' if threshold is None or value is None else ('MET' if value <= threshold else 'MISSED')} |"
      for case, check, value, threshold in targets()]
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
      f"{'JaxCallTimer (smoke)' if SMOKE else 'JaxLoopTimer'} medians, {TIMING}.",
      "", "## Targets (issue 9)", "", "| case | check | ratio |", "|---|---|---|",
      *target_lines, "", "## Lines", "",
      "vs cuDNN: time / cuDNN's (dense for every density, causal for causal). Triton/this: the "
      "Triton kernel's time / this kernel's on the same mask. err: max |error| vs the float32 "
      "masked reference on batch 0, heads 0-1; diff: max |difference| from cuDNN (dense, causal)"
      " or from this kernel (Triton lines) over the whole output.", "",
      "| case | line | median us | p10-p90 | vs cuDNN | Triton/this | err | diff | check |",
      "|---|---|---|---|---|---|---|---|---|", *lines]
  table = "\n".join(text)
  with open(f"{ARGS.out_dir}/attention_mgpu.md", "w") as f:
    f.write(table + "\n")
  return table


def record(**row):
  row.setdefault("error", None)
  results.append(row)
  status = row["error"] or f"{row['median_us']:.1f} us"
  print(f"[{time.time() - started:6.1f}s] {row['case']:<14} {row['line']:<26} {status}",
        flush=True)
  write_outputs()


def attempt(case, line, need_s, body, **extra):
  """Runs body() -> dict of fields unless the deadline is near; records errors and goes on."""
  if time.time() + need_s > DEADLINE:
    record(case=case, line=line, error=f"skipped: {DEADLINE - time.time():.0f}s left, needs "
           f"~{need_s}s", **extra)
    return
  try:
    record(case=case, line=line, **extra, **body())
  except Exception as error:  # noqa: BLE001
    message = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    record(case=case, line=line, error=message, **extra)
    traceback.print_exc(limit=3)


# -- timing -------------------------------------------------------------------------------------
class CompiledLoop:
  """One timer compilation reused for operands of the same shapes (the masks of every density
  share one padded shape)."""

  def __init__(self, fn, operands):
    self.timer = (JaxCallTimer(fn, operands) if SMOKE else JaxLoopTimer(fn, [operands]))

  def measure(self, operands):
    timer = copy.copy(self.timer)
    if SMOKE:
      timer._operands = tuple(operands)
    else:
      timer._sets = (tuple(operands),)
    output = timer.run_once()
    return timer.measure(TIMING), output


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


def timed(key, loop, operands, *, check_against=None, reference_of=None):
  """Checks, then times one line: fields for ``record``."""
  measurement, output = loop.measure(operands)
  times[key] = measurement.median_us
  outputs[key] = output
  head_dim, _, name = key
  fields = dict(median_us=measurement.median_us, p10_us=measurement.p10_us,
                p90_us=measurement.p90_us, inner=measurement.inner,
                repeats=measurement.repeats, timing=measurement.method)
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
  fields["vs_cudnn"] = ratio(measurement.median_us, cudnn)
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
      def run(line=line, fn=fn, args=args, name=name, baseline=baseline):
        note = ""
        if line == "mgpu":
          reason = mgpu_attention.supports(*args, block_size=(BLOCK, BLOCK), causal=causal)
          if reason is not True and "miscompiled" not in reason:
            raise ValueError(f"supports() refused: {reason}")
          if reason is not True:  # run anyway: the output check shows whether it is wrong
            note = f"(supports() refuses: {reason})"
        first = time.time()
        if line not in loops:
          loops[line] = CompiledLoop(fn, args)
        compile_s = time.time() - first
        fields = timed((head_dim, line, name), loops[line], args, reference_of=name,
                       check_against=baseline if line == "mgpu" else (head_dim, "mgpu", name))
        fields["triton_over_this"] = ratio(times.get((head_dim, "triton", name)),
                                           times.get((head_dim, "mgpu", name)))
        if line == "triton":  # fill in this kernel's row, recorded before the Triton time
          for row in results:
            if (row.get("head_dim"), row.get("line"), row.get("mask")) == (
                head_dim, "jsparse-mosaic-gpu", str(name)) and not row["error"]:
              row["triton_over_this"] = fields["triton_over_this"]
        config = (mgpu_attention.default_config(head_dim=head_dim, block_size=(BLOCK, BLOCK))
                  if line == "mgpu" else triton_config)
        return dict(**fields, compile_s=compile_s, config=dataclasses.asdict(config), note=note)
      attempt(f"D{head_dim} {name}", label, 3 if line in loops else 12, run,
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


for head_dim in DIMS:
  operands = tuple(jax.random.normal(jax.random.key(10 + i), (BATCH, SEQ, HEADS, head_dim),
                                     jnp.bfloat16) for i in range(3))
  cudnn_line(head_dim, operands, causal=False)
  sparse_lines(head_dim, operands, DENSITIES)
  attention_mgpu_line(head_dim, operands)
  cudnn_line(head_dim, operands, causal=True)
  sparse_lines(head_dim, operands, ("causal",))
  del operands
  outputs.clear()  # device memory for the next head dim

print(write_outputs())
