"""Timings of the block-sparse attention kernel (issue 9), run by attention.sh.

python3 -P experiments/gpu_checks/attention_bench.py OUTDIR --budget-s S [--smoke]

Device-side timing (JaxLoopTimer for JAX, TorchCudaTimer for torch), bf16, batch 4, 16 heads,
seq 8192, 128 x 128 mask blocks, head dims 64 and 128, in priority order under a deadline:
  1. copy bandwidth (torch copy_, jnp.negative) and the timer's floor per op; a probe of the
     kernel's in-kernel tile bounds (small causal case vs the reference; if it fails, every
     jsparse line passes bounds precomputed by ``bsa.tile_bounds`` instead);
  2. the config sweep (``attention_sweep.VARIANTS``, <= 16 per head dim; dense, density 0.1 and
     causal at both head dims; plus ``CAUSAL_VARIANTS``, causal only): all variants compiled in parallel threads (XLA/Triton compile
     outside the GIL), then timed one by one with a short timing config (``--sweep-s`` caps it);
     each output checked against DEFAULT_TABLE's config; the winners make the proposed
     ConfigTable (printed as source to paste);
  3. per head dim: cuDNN dense, jsparse at densities 1.0/0.5/0.1/0.05 and causal with the config
     the proposed table picks (compiled loops reused from the sweep), cuDNN causal, SDPA dense and
     causal, compiled FlexAttention on the same kept blocks (full blocks) and causal; decoding
     (batch 4, 16 heads, head dim 128, KV 32k, 1 and 16 queries, kept densities 0.1/0.25)
     against the copy bandwidth on the kept KV bytes comes between head dims 64 and 128;
  4. jsparse at 0.05 and causal with bounds precomputed outside the call (what the in-kernel
     count costs); JAX's Mosaic GPU flash attention (float16: it rejects bfloat16). (Round 3's
     layout diagnostic, the kernel on contiguous [B*H, S, 1, D] rows, is gone: 1.01x, settled.)
  5. ptxas -v registers and spills of the kernels the proposed and the default table run;
  6. the issue's targets (MET / MISSED), recomputed after every line (a killed run keeps them).
Outputs: OUTDIR/attention_results.json (every row, the config table, machine, versions, date,
timing config) and OUTDIR/attention_table.md (targets first, then every line); the table is
printed.
A case that would not fit the deadline is recorded as skipped; a failing case records its error.
--smoke: tiny shapes in Pallas interpret mode on the CPU (checks this script, not the kernel).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import machine, timing
from experiments.gpu_checks import attention_sweep as sweep
from experiments.gpu_checks.attention_sweep import config_name
from experiments.gpu_checks import bench_common
from experiments.gpu_checks.bench_common import BenchLog
from experiments.timing import TimingConfig, TorchCudaTimer
from pallas_kernels import block_sparse_attention as bsa

DENSITIES = (1.0, 0.5, 0.1, 0.05)
DEC_DENSITIES = (0.1, 0.25)
DEC_QUERIES = (1, 16)


def parse_args():
  parser = argparse.ArgumentParser()
  parser.add_argument("out_dir")
  parser.add_argument("--budget-s", type=float, default=150.0)
  parser.add_argument("--sweep-s", type=float, default=65.0,
                      help="cap on the config sweep (compilation and timing)")
  parser.add_argument("--smoke", action="store_true")
  return parser.parse_args()


ARGS = parse_args()
SMOKE = ARGS.smoke
ENV = machine.detect().asdict()
try:
  import torch
  import torch.nn.functional as F
  from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
  HAS_TORCH = torch.cuda.is_available()
except Exception:  # noqa: BLE001  (CPU smoke runs may have no torch)
  HAS_TORCH = False

# Samples of at least 20 ms: JaxLoopTimer times one host call of a jitted loop, so a sample of one
# op also holds the call's dispatch and sync. Round 1 (2 ms samples) ran the millisecond cases
# at inner=1, dispatch included (D128 at density 0.1: 1622 us, 2.1x its share of dense, wide p90).
TIMING = TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.02, max_total_s=0.3)
# The sweep ranks ~90 cases: 3 samples of >= 8 back-to-back ops each (a loop iteration runs 8).
SWEEP_TIMING = TimingConfig(repeats=3, min_repeats=3, min_sample_s=0.004, max_total_s=0.15)
SWEEP_TOLERANCE = 0.03  # max |difference| from DEFAULT_TABLE's config output (bf16 outputs)
if SMOKE:
  BATCH, HEADS, SEQ, BLOCK, DIMS = 1, 2, 256, 64, (64,)
  DEC_BATCH, DEC_HEADS, DEC_DIM, DEC_KV, DEC_BLOCK = 1, 2, 64, 1024, 64
  COPY_ELEMS = 1 << 20
else:
  BATCH, HEADS, SEQ, BLOCK, DIMS = 4, 16, 8192, 128, (64, 128)
  # Batch 4: at batch 1 and density 0.1 the kept KV is ~27 MB (~9 us at HBM speed), a latency-
  # rather than bandwidth-bound case.
  DEC_BATCH, DEC_HEADS, DEC_DIM, DEC_KV, DEC_BLOCK = 4, 16, 128, 32768, 64
  COPY_ELEMS = 1 << 29  # 1 GiB of bf16
rng = np.random.default_rng(0)
LOG = BenchLog(ARGS.budget_s, lambda: write_outputs())
results, record, attempt, DEADLINE = LOG.rows, LOG.record, LOG.attempt, LOG.deadline


def verdict(check, value):
  """'0.85 MET' for a check named '... <= 1' or '... >= 1.3' (its threshold last)."""
  if value is None:
    return "- (not measured)"
  op, threshold = check.split()[-2:]
  met = value <= float(threshold) if op == "<=" else value >= float(threshold)
  return f"{value:.2f} {'MET' if met else 'MISSED'}"


# -- recording --------------------------------------------------------------------------------
def row_text(row):
  if row["error"]:
    return f"| {row['case']} | {row['line']} | - | - | {row['error'][:160]} |"
  extra = ", ".join(f"{k}={row[k]:.3g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                    for k in ("density", "gb_per_s", "fraction_of_copy_bw",
                              "fraction_net_of_timer_floor",
                              "max_abs_err_vs_reference", "max_abs_diff_vs_cudnn",
                              "max_abs_diff_vs_default_config", "registers", "spill_stores",
                              "spill_loads", "smem_bytes",
                              "max_abs_diff_vs_jsparse", "first_call_s",
                              "config_name")
                    if row.get(k) is not None)
  if row.get("median_us") is None:  # a check without a timing (the probe)
    return f"| {row['case']} | {row['line']} | - | - | {extra} |"
  return (f"| {row['case']} | {row['line']} | {row['median_us']:.1f} | "
          f"{row['p10_us']:.1f}-{row['p90_us']:.1f} | {extra} |")


TABLE = dataclasses.asdict(bsa.DEFAULT_TABLE)
sweep_times, sweep_errors = {}, {}  # (head_dim, regime, config) -> us; (head_dim, config) -> text
proposed = bsa.DEFAULT_TABLE  # replaced by the sweep's table once it has run
bounds_in_kernel = True  # False if the probe of the in-kernel tile bounds fails


def write_outputs():
  """JSON + markdown of everything so far (rewritten after every case: a run killed at its
  time limit still leaves its results). Targets first, then every line in measured order."""
  # Targets from what is measured so far (a run killed at its time limit still has them).
  target_rows = all_targets() if "all_targets" in globals() else []
  with open(f"{ARGS.out_dir}/attention_results.json", "w") as f:
    json.dump(dict(machine=ENV, smoke=SMOKE, timing=dataclasses.asdict(TIMING),
                   timer_unroll=getattr(timing, "UNROLL", None), config_table=TABLE,
                   proposed_table=dataclasses.asdict(proposed),
                   proposed_table_source=sweep.table_literal(proposed),
                   bounds_in_kernel=bounds_in_kernel,
                   shapes=dict(batch=BATCH, heads=HEADS, seq=SEQ, block=BLOCK, head_dims=DIMS,
                               decode=dict(batch=DEC_BATCH, heads=DEC_HEADS, head_dim=DEC_DIM,
                                           kv_len=DEC_KV, block=DEC_BLOCK)),
                   targets=target_rows, results=results), f, indent=1, default=str)
  header = ["| case | line | median us | p10-p90 | extra |", "|---|---|---|---|---|"]
  targets = [f"| {r['case']} | {check} | {verdict(check, value)} |"
             for r in target_rows for check, value in r["checks"].items()]
  lines = [row_text(r) for r in results]
  versions = ", ".join(f"{k} {v}" for k, v in sorted(ENV["versions"].items()) if v)
  text = [f"# Block-sparse attention ({ENV['device']}, {ENV['date']}{', SMOKE (CPU interpret)' if SMOKE else ''})",
          "", f"Versions: {versions}. bf16, batch {BATCH}, {HEADS} heads, seq {SEQ}, "
          f"{BLOCK}x{BLOCK} mask blocks; decoding: batch {DEC_BATCH}, {DEC_HEADS} heads, head dim "
          f"{DEC_DIM}, KV {DEC_KV}, {DEC_BLOCK}-key blocks. JaxLoopTimer (unroll "
          f"{getattr(timing, 'UNROLL', '?')}) / TorchCudaTimer, {TIMING}.", "",
          f"ConfigTable (bsa.DEFAULT_TABLE): `{TABLE}`", "",
          f"jsparse lines use the sweep's proposed table (below); tile bounds "
          f"{'counted in the kernel' if bounds_in_kernel else 'precomputed (in-kernel probe failed)'}.",
          "", "## Targets (issue 9)", "", "| case | check | ratio, verdict |", "|---|---|---|",
          *targets, "", *sweep.markdown(sweep_times, sweep_errors, proposed), "## Lines", "",
          *header, *lines]
  table = "\n".join(text)
  with open(f"{ARGS.out_dir}/attention_table.md", "w") as f:
    f.write(table + "\n")
  return table


# -- timing helpers ---------------------------------------------------------------------------
def summary(m):
  return dict(median_us=m.median_us, p10_us=m.p10_us, p90_us=m.p90_us, timing=m.method,
              inner=m.inner, repeats=m.repeats)


class CompiledLoop(bench_common.CompiledLoop):
  """``bench_common.CompiledLoop`` at this script's timing settings by default."""

  def measure(self, operands, timing_config=TIMING):
    return super().measure(operands, timing_config)


def torch_time(fn):
  timer = TorchCudaTimer([fn])
  output = timer.run_once()
  return timer.measure(TIMING), output


def max_diff(a, b):
  return float(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)).max())


def random_lists(heads, q_blocks, kv_blocks, density, *, causal=False):
  """Per-head kept lists with round(density * kv_blocks) random blocks per query block (the
  lower triangle when causal), padded to kv_blocks so every density shares one compilation."""
  dense = np.zeros((heads, q_blocks, kv_blocks), bool)
  for h, i in np.ndindex(heads, q_blocks):
    if causal:
      dense[h, i, :min(kv_blocks, i + 1)] = True
    else:
      dense[h, i, rng.choice(kv_blocks, max(1, round(density * kv_blocks)), replace=False)] = True
  return compact_lists(dense, kv_blocks)


def compact_lists(dense, width=None):
  """(indices, counts) int32 of a bool [Hm, nqb, nkb] mask, lists padded to ``width`` (default
  the longest) with the last kept index."""
  counts = dense.sum(-1).astype(np.int32)
  indices = np.zeros((*dense.shape[:2], width or max(1, int(counts.max()))), np.int32)
  for h, i in np.ndindex(*dense.shape[:2]):
    kept = np.flatnonzero(dense[h, i])
    indices[h, i, :kept.size] = kept
    indices[h, i, kept.size:] = kept[-1] if kept.size else 0
  return jnp.asarray(indices), jnp.asarray(counts)


# -- 1. copy bandwidth and the timer's floor --------------------------------------------------
def bandwidth(measurement, moved_bytes):
  return dict(**summary(measurement), gb_per_s=moved_bytes / measurement.median_us / 1e3)


source = jnp.ones((COPY_ELEMS,), jnp.bfloat16)
fields = attempt("copy", "jax-negate", 5, lambda: bandwidth(
    CompiledLoop(jnp.negative, (source,)).measure((source,))[0], 2 * source.nbytes),
    bytes=2 * source.nbytes)
copy_gbs = fields["gb_per_s"] if fields else None
if HAS_TORCH:
  src_t = torch.ones(COPY_ELEMS, dtype=torch.bfloat16, device="cuda")
  dst_t = torch.empty_like(src_t)
  fields = attempt("copy", "torch-copy_", 3, lambda: bandwidth(
      torch_time(lambda: dst_t.copy_(src_t))[0], 2 * src_t.nbytes), bytes=2 * src_t.nbytes)
  if fields:
    copy_gbs = max(copy_gbs or 0, fields["gb_per_s"])
  del src_t, dst_t
del source
# What JaxLoopTimer still adds per op (a 512-byte op; the loop runs UNROLL ops per iteration).
tiny = jnp.ones((128,), jnp.float32)
fields = attempt("timer floor", "jax-loop tiny negate", 3,
                 lambda: summary(CompiledLoop(jnp.negative, (tiny,)).measure((tiny,))[0]))
timer_floor_us = fields["median_us"] if fields else 0.0
reference = jax.jit(bsa.reference_fn, static_argnames=("block_size", "causal", "scale"))

# -- 2. prefill per head dim, decoding after head dim 64 --------------------------------------
nb = SEQ // BLOCK
masks = {d: random_lists(HEADS, nb, nb, d) for d in DENSITIES}
masks["causal"] = random_lists(HEADS, nb, nb, 1.0, causal=True)
times, outputs = {}, {}


def info(head_dim):
  return dict(head_dim=head_dim, batch=BATCH, heads=HEADS, seq=SEQ, block=BLOCK)


def kept_fraction(name):
  return float(masks[name][1].sum()) / (HEADS * nb * nb)


def cudnn_line(head_dim, operands, causal):
  name = "causal" if causal else 1.0
  def run():
    fn = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal,
                                                      implementation="cudnn")
    m, outputs[head_dim, "cudnn", name] = CompiledLoop(fn, operands).measure(operands)
    times[head_dim, "cudnn", name] = m.median_us
    return summary(m)
  attempt(f"D{head_dim} {name}", "jax-cudnn", 4, run, **info(head_dim))


def kernel_call(config, causal, in_kernel):
  """The jsparse call timed: tile bounds counted in the kernel, or passed precomputed."""
  common = dict(block_size=(BLOCK, BLOCK), causal=causal, config=config, interpret=SMOKE)
  if in_kernel:
    return lambda q, k, v, i, c: bsa.kernel_fn(q, k, v, i, c, **common)
  return lambda q, k, v, i, c, b: bsa.kernel_fn(q, k, v, i, c, bounds=b, **common)


def kernel_args(operands, name, config, causal, in_kernel):
  args = (*operands, *masks[name])
  if not in_kernel:  # computed once here, outside the timed loop (a cached mask)
    args += (bsa.tile_bounds(*masks[name], q_len=SEQ, kv_len=SEQ, block_size=(BLOCK, BLOCK),
                             config=config, causal=causal),)
  return args


loops = {}  # (head_dim, config, causal, in_kernel) -> CompiledLoop: the sweep's, reused later


def compiled_loop(head_dim, config, causal, in_kernel, operands):
  key = (head_dim, config, causal, in_kernel)
  if key not in loops:
    name = "causal" if causal else 1.0
    loops[key] = CompiledLoop(kernel_call(config, causal, in_kernel),
                              kernel_args(operands, name, config, causal, in_kernel))
  return loops[key]


def jsparse_lines(head_dim, operands, names, line="jsparse-pallas", in_kernel=None):
  """The config the proposed table picks, on several masks of one shape: one compilation
  (usually the sweep's)."""
  in_kernel = bounds_in_kernel if in_kernel is None else in_kernel
  for name in names:
    causal = name == "causal"
    config = bsa.default_config(batch=BATCH, num_heads=HEADS, q_len=SEQ, head_dim=head_dim,
                                block_size=(BLOCK, BLOCK), max_kept=int(masks[name][1].max()),
                                num_kv_blocks=nb, causal=causal, table=proposed)
    cached = (head_dim, config, causal, in_kernel) in loops

    def run(name=name, causal=causal, config=config):
      first = time.time()
      loop = compiled_loop(head_dim, config, causal, in_kernel, operands)
      compile_s = time.time() - first
      m, output = loop.measure(kernel_args(operands, name, config, causal, in_kernel))
      if line == "jsparse-pallas":
        times[head_dim, "jsparse", name] = m.median_us
        outputs[head_dim, "jsparse", name] = output
      dense_ref = outputs.get((head_dim, "cudnn", name))
      return dict(**summary(m), config=dataclasses.asdict(config),
                  config_name=config_name(config), compile_s=compile_s,
                  max_abs_diff_vs_cudnn=None if dense_ref is None else max_diff(output, dense_ref))
    attempt(f"D{head_dim} {name}", line, 2 if cached else 5, run, density=kept_fraction(name),
            **info(head_dim))


def probe_in_kernel_bounds():
  """The in-kernel tile bounds on a small causal case with a ragged, non-power-of-two kept list
  (the vector-load path) against the reference; on failure the bench precomputes bounds."""
  global bounds_in_kernel
  seq, head_dim = (SEQ, 64) if SMOKE else (1000, 64)
  shape = (1, seq, 4, head_dim)
  q, k, v = (jax.random.normal(jax.random.key(20 + i), shape, jnp.bfloat16) for i in range(3))
  dense = np.tril(np.ones((-(-seq // BLOCK),) * 2, bool))[None]
  dense[0, -1, 1] = False  # a hole: max_kept is one less than the blocks, not a power of two
  indices, counts = compact_lists(dense)
  try:
    out = jax.block_until_ready(bsa.kernel_fn(q, k, v, indices, counts, block_size=(BLOCK, BLOCK),
                                              causal=True, interpret=SMOKE))
    error = max_diff(out, reference(q, k, v, indices, counts, block_size=(BLOCK, BLOCK),
                                    causal=True))
    if not error <= SWEEP_TOLERANCE:
      raise ValueError(f"max |error| {error} vs the reference")
    record(case="probe", line="in-kernel tile bounds", max_abs_err_vs_reference=error)
  except Exception as exc:  # noqa: BLE001
    bounds_in_kernel = False
    record(case="probe", line="in-kernel tile bounds",
           error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
           " -> bounds precomputed for every jsparse line")


def config_sweep(operand_sets, budget_s):
  """Compiles every variant (causal and not) in threads, then times dense / density 0.1 /
  causal per variant; fills sweep_times and sweep_errors and sets the proposed table."""
  global proposed
  deadline = min(DEADLINE, time.time() + budget_s)
  fits = lambda c: BLOCK % c.block_q == 0 and BLOCK % c.block_k == 0
  variants = {d: [c for c in sweep.VARIANTS.get(d, ()) if fits(c)][:2 if SMOKE else None]
              for d in DIMS}
  for head_dim in DIMS:  # DEFAULT_TABLE's config first: the others are checked against it
    current = bsa.default_config(batch=BATCH, num_heads=HEADS, q_len=SEQ, head_dim=head_dim,
                                 block_size=(BLOCK, BLOCK), max_kept=nb)
    variants[head_dim].sort(key=lambda c: c != current)
  jobs = [job for d in DIMS for job in
          [(d, c, causal) for c in variants[d] for causal in (False, True)]
          + [(d, c, True) for c in sweep.CAUSAL_VARIANTS.get(d, ()) if fits(c)]]

  def build(job):
    head_dim, config, causal = job
    if time.time() > deadline:
      raise TimeoutError("sweep deadline passed before compiling")
    return compiled_loop(head_dim, config, causal, bounds_in_kernel, operand_sets[head_dim])

  first = time.time()
  workers = int(os.environ.get("ATTENTION_SWEEP_THREADS", "0")) or (
      1 if SMOKE else max(1, min(8, (os.cpu_count() or 2) - 1)))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    futures = [(job, pool.submit(build, job)) for job in jobs]
  failed = {}
  for job, future in futures:
    if future.exception() is not None:
      exc = future.exception()
      failed[job] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
  # Up to 6 failures retried alone: one that then compiles points at thread-unsafe compilation
  # (set ATTENTION_SWEEP_THREADS=1); a real one (shared memory, registers) fails again.
  retried = [job for job in failed if workers > 1][:6]
  fixed = 0
  for job in retried:
    try:
      build(job)
      del failed[job]
      fixed += 1
    except Exception:  # noqa: BLE001
      pass
  print(f"sweep: {len(jobs) - len(failed)}/{len(jobs)} compiled in {time.time() - first:.1f}s "
        f"({workers} threads; {fixed} of {len(retried)} failures retried alone compiled)",
        flush=True)
  references = {}
  for job in jobs:
    head_dim, config, causal = job
    regimes = (("causal", "causal"),) if causal else (("dense", 1.0), ("sparse", 0.1))
    for regime, name in regimes:
      row = dict(case=f"D{head_dim} {regime}", line="sweep", config=dataclasses.asdict(config),
                 config_name=config_name(config), density=kept_fraction(name), **info(head_dim))
      if job in failed:
        sweep_errors[head_dim, config] = failed[job]
        record(**row, error=failed[job])
        continue
      if time.time() > deadline:
        record(**row, error="skipped: sweep deadline")
        continue
      try:
        loop = loops[head_dim, config, causal, bounds_in_kernel]
        m, output = loop.measure(kernel_args(operand_sets[head_dim], name, config, causal,
                                             bounds_in_kernel), SWEEP_TIMING)
        diff = max_diff(output, references.setdefault((head_dim, regime), output))
        if not diff <= SWEEP_TOLERANCE:
          raise ValueError(f"output differs from DEFAULT_TABLE's config by {diff}")
        sweep_times[head_dim, regime, config] = m.median_us
        record(**row, **summary(m), max_abs_diff_vs_default_config=diff)
      except Exception as exc:  # noqa: BLE001
        sweep_errors[head_dim, config] = f"{type(exc).__name__}: {str(exc)[:200]}"
        record(**row, error=sweep_errors[head_dim, config])
  proposed = sweep.proposed_table(sweep_times)
  write_outputs()


def sdpa_lines(head_dim, qkv):
  for causal in (False, True):
    def sdpa(causal=causal):
      m, _ = torch_time(lambda: F.scaled_dot_product_attention(*qkv, is_causal=causal))
      times[head_dim, "sdpa", "causal" if causal else 1.0] = m.median_us
      return summary(m)
    attempt(f"D{head_dim} {'causal' if causal else 1.0}", "torch-sdpa", 2, sdpa, **info(head_dim))


if HAS_TORCH:
  flex = torch.compile(flex_attention, dynamic=False)

  def causal_mod(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def flex_block_mask(name):
  """The kept blocks as "full" blocks (no mask_mod inside them, FlexAttention's fastest path);
  causal through create_block_mask."""
  if name == "causal":
    return create_block_mask(causal_mod, None, None, SEQ, SEQ, device="cuda", BLOCK_SIZE=BLOCK)
  indices, counts = masks[name]
  full_indices = torch.from_dlpack(indices).unsqueeze(0).contiguous()  # [1, H, nqb, nkb]
  full_counts = torch.from_dlpack(counts).unsqueeze(0).contiguous()  # [1, H, nqb]
  return BlockMask.from_kv_blocks(torch.zeros_like(full_counts), torch.zeros_like(full_indices),
                                  full_counts, full_indices, BLOCK_SIZE=BLOCK,
                                  seq_lengths=(SEQ, SEQ))


def flex_lines(head_dim, qkv, names):
  """Round 2: the first call compiled in 4.1 s (head dim 64), 1.5 s (128, warm cache); masks
  of the same shape reuse it; causal (partial blocks, a mask_mod) compiles again."""
  compiled = set()
  for name in names:
    def run(name=name):
      block_mask = flex_block_mask(name)
      first = time.time()
      flex(*qkv, block_mask=block_mask)
      torch.cuda.synchronize()
      first_call_s = time.time() - first
      compiled.add(name == "causal")
      m, output = torch_time(lambda: flex(*qkv, block_mask=block_mask))
      times[head_dim, "flex", name] = m.median_us
      ours = outputs.get((head_dim, "jsparse", name))
      err = None if ours is None else float(
          (torch.from_dlpack(ours).permute(0, 2, 1, 3).float() - output.float()).abs().max())
      return dict(**summary(m), max_abs_diff_vs_jsparse=err, first_call_s=first_call_s)
    attempt(f"D{head_dim} {name}", "torch-flex", 2 if (name == "causal") in compiled else 7, run,
            density=kept_fraction(name), **info(head_dim))


decode_fraction = {}  # (queries, density) -> fraction of copy bandwidth


def decode_lines():
  cache_shape = (DEC_BATCH, DEC_KV, DEC_HEADS, DEC_DIM)
  k_dec = jax.random.normal(jax.random.key(0), cache_shape, jnp.bfloat16)
  v_dec = jax.random.normal(jax.random.key(1), cache_shape, jnp.bfloat16)
  dec_block = (16, DEC_BLOCK)
  dec_masks = {d: random_lists(DEC_HEADS, 1, DEC_KV // DEC_BLOCK, d) for d in DEC_DENSITIES}
  for queries in DEC_QUERIES:
    q_dec = jax.random.normal(jax.random.key(2), (DEC_BATCH, queries, DEC_HEADS, DEC_DIM),
                              jnp.bfloat16)
    config = bsa.default_config(batch=DEC_BATCH, num_heads=DEC_HEADS, q_len=queries,
                                head_dim=DEC_DIM, block_size=dec_block,
                                max_kept=DEC_KV // DEC_BLOCK)
    fn = lambda q, k, v, i, c, config=config: bsa.kernel_fn(
        q, k, v, i, c, block_size=dec_block, causal=True, config=config, interpret=SMOKE)
    loop = None
    for density in DEC_DENSITIES:
      indices, counts = dec_masks[density]
      kept_bytes = DEC_BATCH * int(counts.sum()) * DEC_BLOCK * DEC_DIM * 2 * 2  # K, V in bf16

      def run(operands=(q_dec, k_dec, v_dec, indices, counts), kept_bytes=kept_bytes,
              density=density, fn=fn, config=config):
        nonlocal loop
        loop = loop or CompiledLoop(fn, operands)
        m, output = loop.measure(operands)
        expected = reference(*operands, block_size=dec_block, causal=True)
        gbs = kept_bytes / m.median_us / 1e3
        net_gbs = kept_bytes / max(m.median_us - timer_floor_us, 1e-3) / 1e3
        decode_fraction[queries, density] = gbs / copy_gbs if copy_gbs else None
        return dict(**summary(m), kept_bytes=kept_bytes, gb_per_s=gbs,
                    fraction_of_copy_bw=gbs / copy_gbs if copy_gbs else None,
                    fraction_net_of_timer_floor=net_gbs / copy_gbs if copy_gbs else None,
                    max_abs_err_vs_reference=max_diff(output, expected),
                    config=dataclasses.asdict(config), config_name=config_name(config))
      attempt(f"decode q{queries} d{density}", "jsparse-pallas", 2 if loop else 4, run,
              queries=queries, density=density, head_dim=DEC_DIM, kv_len=DEC_KV,
              batch=DEC_BATCH)
    if HAS_TORCH:
      def sdpa_decode(q=q_dec):
        qt, kt, vt = (torch.from_dlpack(x).permute(0, 2, 1, 3).contiguous()
                      for x in (q, k_dec, v_dec))
        m, _ = torch_time(lambda: F.scaled_dot_product_attention(qt, kt, vt))
        return dict(**summary(m), gb_per_s=2 * k_dec.nbytes / m.median_us / 1e3,
                    fraction_of_copy_bw=2 * k_dec.nbytes / m.median_us / 1e3 / copy_gbs
                    if copy_gbs else None)
      attempt(f"decode q{queries} dense", "torch-sdpa", 2, sdpa_decode, queries=queries,
              density=1.0, head_dim=DEC_DIM, kv_len=DEC_KV, batch=DEC_BATCH)


def targets(head_dim):
  t = lambda line, name: times.get((head_dim, line, name))
  ours_dense = t("jsparse", 1.0)
  best = [x for x in (t("cudnn", 1.0), t("sdpa", 1.0), t("mosaic", 1.0)) if x]
  checks = {"dense: jsparse / best dense (cudnn, sdpa, mosaic) <= 1.2":
            ours_dense / min(best) if ours_dense and best else None}
  for d in DENSITIES[1:]:
    ours = t("jsparse", d)
    kept = kept_fraction(d)
    checks[f"d={d} (kept {kept:.3f}): t / (1.2*kept*t_dense + 10us) <= 1"] = (
        ours / (1.2 * kept * ours_dense + 10) if ours and ours_dense else None)
    checks[f"d={d}: flex / jsparse >= 1.3"] = t("flex", d) / ours if ours and t("flex", d) else None
  checks["causal: jsparse / cudnn causal <= 1.15"] = (
      t("jsparse", "causal") / t("cudnn", "causal")
      if t("jsparse", "causal") and t("cudnn", "causal") else None)
  checks["causal: flex / jsparse >= 1.3"] = (
      t("flex", "causal") / t("jsparse", "causal")
      if t("jsparse", "causal") and t("flex", "causal") else None)
  return checks


def all_targets():
  """The issue's targets from the numbers measured so far: rows for write_outputs."""
  rows = [dict(case="decode", line="derived", checks={
      f"q{queries} d{density}: kept-KV GB/s / copy GB/s >= 0.6":
      decode_fraction.get((queries, density))
      for queries in DEC_QUERIES for density in DEC_DENSITIES})]
  return rows + [dict(case=f"D{head_dim}", line="derived", checks=targets(head_dim))
                 for head_dim in DIMS]


probe_in_kernel_bounds()
operand_sets = {head_dim: tuple(jax.random.normal(jax.random.key(10 + i),
                                                  (BATCH, SEQ, HEADS, head_dim), jnp.bfloat16)
                                for i in range(3)) for head_dim in DIMS}
config_sweep(operand_sets, ARGS.sweep_s)
print("\n".join(sweep.markdown(sweep_times, sweep_errors, proposed)), flush=True)

for position, head_dim in enumerate(DIMS):
  operands = operand_sets[head_dim]
  cudnn_line(head_dim, operands, causal=False)
  cudnn_line(head_dim, operands, causal=True)
  jsparse_lines(head_dim, operands, DENSITIES)
  jsparse_lines(head_dim, operands, ("causal",))
  if HAS_TORCH:
    qkv = tuple(torch.from_dlpack(x).permute(0, 2, 1, 3).contiguous() for x in operands)
    sdpa_lines(head_dim, qkv)
    flex_lines(head_dim, qkv, DENSITIES[1:] + (1.0, "causal"))
    del qkv
  if position == 0:
    decode_lines()
  if head_dim == DIMS[0] and bounds_in_kernel:
    # What counting the tile bounds in the kernel costs: bounds precomputed outside the call.
    jsparse_lines(head_dim, operands, (0.05, "causal"), line="jsparse bounds precomputed",
                  in_kernel=False)

# -- 4. JAX's own Mosaic GPU flash attention (dense, FA3-style warp specialization): what Pallas
# on Mosaic GPU reaches here, for deciding whether to port this kernel off the Triton backend.
# float16: in round 3 it rejected bfloat16 ("src had type bfloat16 and dst had type float16").
if not SMOKE:
  for head_dim in DIMS:
    def mosaic_dense(head_dim=head_dim):
      from jax.experimental.pallas.ops.gpu import attention_mgpu
      operands = tuple(x.astype(jnp.float16) for x in operand_sets[head_dim])
      config = attention_mgpu.TuningConfig(block_q=64, block_kv=128, max_concurrent_steps=2)
      fn = lambda q, k, v: attention_mgpu.attention(q, k, v, config)
      m, output = CompiledLoop(fn, operands).measure(operands)
      times[head_dim, "mosaic", 1.0] = m.median_us
      dense_ref = outputs.get((head_dim, "cudnn", 1.0))
      return dict(**summary(m), config_name="64x128 steps2",
                  max_abs_diff_vs_cudnn=None if dense_ref is None else max_diff(output, dense_ref))
    attempt(f"D{head_dim} 1.0", "jax-pallas-mosaic-gpu", 6, mosaic_dense, dtype="float16",
            **info(head_dim))


# -- 5. Registers and spills of the kernels the proposed table runs (and DEFAULT_TABLE's): XLA
# dumps the PTX of one compilation (compiler option xla_dump_to), ptxas -v reports per kernel.
# Spills in the [block_q, D] float32 accumulator (head dim 128) would explain a throughput gap.
def ptxas_binary():
  import glob
  import shutil
  import site
  import sys
  roots = [*site.getsitepackages(), *sys.path]
  found = [shutil.which("ptxas")] + [path for root in roots for pattern in
           ("nvidia/*/bin/ptxas", "triton/backends/nvidia/bin/ptxas")
           for path in glob.glob(os.path.join(root, pattern))]
  return next((path for path in found if path), None)


def ptxas_report(head_dim, config, causal):
  import re
  import subprocess
  import tempfile
  binary = ptxas_binary()
  if binary is None:
    raise FileNotFoundError("no ptxas on PATH, in nvidia/*/bin or triton's bundle")
  name = "causal" if causal else 1.0
  args = kernel_args(operand_sets[head_dim], name, config, causal, bounds_in_kernel)
  with tempfile.TemporaryDirectory() as dump:
    jax.jit(kernel_call(config, causal, bounds_in_kernel)).lower(*args).compile(
        compiler_options={"xla_dump_to": dump})
    ptx_files = [os.path.join(dump, f) for f in sorted(os.listdir(dump)) if f.endswith(".ptx")]
    kernels = {}
    for ptx in ptx_files:
      text = subprocess.run([binary, "-arch=sm_90a", "-v", ptx, "-o", os.devnull],
                            capture_output=True, text=True, timeout=60).stderr
      for entry, body in re.findall(r"Compiling entry function '([^']+)'(.*?)(?=Compiling entry|$)",
                                    text, re.S):
        numbers = lambda pattern: int(m.group(1)) if (m := re.search(pattern, body)) else None
        kernels[entry] = dict(registers=numbers(r"Used (\d+) registers"),
                              spill_stores=numbers(r"(\d+) bytes spill stores"),
                              spill_loads=numbers(r"(\d+) bytes spill loads"),
                              smem_bytes=numbers(r"(\d+) bytes smem"))
  ours = {k: v for k, v in kernels.items() if "attention" in k} or kernels
  if not ours:
    raise ValueError(f"no kernel in the dumped PTX ({len(ptx_files)} .ptx files)")
  entry, numbers = max(ours.items(), key=lambda item: item[1]["registers"] or 0)
  return dict(**numbers, kernel=entry, config_name=config_name(config))


if not SMOKE:
  checked = set()
  for head_dim in DIMS:
    for causal in (False, True):
      for source, table in (("proposed", proposed), ("default", bsa.DEFAULT_TABLE)):
        config = bsa.default_config(batch=BATCH, num_heads=HEADS, q_len=SEQ, head_dim=head_dim,
                                    block_size=(BLOCK, BLOCK), max_kept=nb, num_kv_blocks=nb,
                                    causal=causal, table=table)
        if (head_dim, config, causal) in checked:
          continue
        checked.add((head_dim, config, causal))
        attempt(f"D{head_dim} {'causal' if causal else 1.0}", f"ptxas ({source} table)", 4,
                lambda h=head_dim, c=config, k=causal: ptxas_report(h, c, k), **info(head_dim))

print(write_outputs())
