"""The sharded benchmark: SpMM, a Llama-3-8B-shaped sparse MLP and block-sparse attention on
1, 2, 4, ... of the devices JAX finds. One command:

    python experiments/scaling/bench.py --out experiments/scaling/results/<name> [--quick]
        [--host-devices 8] [--budget-s 50]

``--host-devices N`` gives the CPU N devices (sets XLA_FLAGS before JAX starts; only the CPU).
Every case runs the ``jsparse.sharding`` op on a mesh of d devices and reports the median time,
the speedup over d = 1, the share of the time spent outside the local kernels ("communication":
1 - time of the same shard_map without its collectives / time of the op), and the nonzero balance
(largest piece / mean piece). On GPUs a profiler trace of 10 further calls adds what the devices
did in one call (``device_time``): the busiest device's busy time, the collective kernels' share
of it, and the call's span over all devices (the table's "span speedup": the speedup with the
host's dispatch between calls left out). A case that fails records its error and the run
goes on; cases past ``--budget-s`` are recorded as skipped. Writes ``results.jsonl`` (one line
per case, with device, versions, date and config), ``table.md`` and, with matplotlib,
``speedup.png``; ``bench.py --redraw OUT/results.jsonl`` redraws the table and plot from the
JSON.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import traceback


def _parse() -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", type=pathlib.Path, help="output folder")
  parser.add_argument("--redraw", type=pathlib.Path, help="only redraw table and plot of this "
                      "results.jsonl")
  parser.add_argument("--quick", action="store_true", help="shapes / 4 (CPU run)")
  parser.add_argument("--host-devices", type=int, default=0, help="CPU devices to create")
  parser.add_argument("--budget-s", type=float, default=600.0, help="skip cases past this")
  parser.add_argument("--max-devices", type=int, default=0, help="use at most this many")
  args = parser.parse_args()
  if (args.out is None) == (args.redraw is None):
    parser.error("give exactly one of --out and --redraw")
  return args


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.host_devices:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={ARGS.host_devices}")

import jax  # noqa: E402  (after XLA_FLAGS)
import jaxlib  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import jsparse  # noqa: E402
from jsparse import sharding  # noqa: E402
from jsparse.datasets.generators import uniform_random  # noqa: E402
from jsparse.sharding import ops as sharded_ops, partition  # noqa: E402

# The grid, as data. Full: the shapes of issue 11 (Llama-3-8B: d_model 4096, d_ff 14336, 32 query
# and 8 key/value heads of 128). Quick: every size / 4, for the CPU.
FULL = {
    "spmm": {"shapes": [(4096, 4096), (14336, 4096)], "sparsity": 0.9, "n": [128, 1024],
             "splits": ["rows", "cols"]},
    "mlp": {"d_model": 4096, "d_ff": 14336, "sparsity": 0.9, "tokens": [128]},
    "attention": {"batch": 1, "seq": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128,
                  "block": 128, "window": 1024, "dtypes": ["float32", "bfloat16"]},
}
QUICK = {
    "spmm": {"shapes": [(1024, 1024), (3584, 1024)], "sparsity": 0.9, "n": [32, 256],
             "splits": ["rows", "cols"]},
    "mlp": {"d_model": 1024, "d_ff": 3584, "sparsity": 0.9, "tokens": [32]},
    "attention": {"batch": 1, "seq": 1024, "heads": 8, "kv_heads": 8, "head_dim": 64,
                  "block": 128, "window": 256, "dtypes": ["float32"]},
}
DTYPE = jnp.float32
SPECS = {"rows": P("x"), "cols": P(None, "x")}


# -- timing ------------------------------------------------------------------------------------
def time_us(fn, *args, min_sample_s: float = 0.02, repeats: int = 7) -> dict:
  """Median wall time of ``fn(*args)`` in microseconds after a warm-up (compilation excluded).

  A sample is ``inner`` back-to-back asynchronous calls, then one wait for the last result;
  ``inner`` doubles until a sample lasts ``min_sample_s``. On the CPU each call is waited for:
  with many sharded calls in flight on forced host devices, XLA's CPU runtime (jax 0.11.2, two
  cores) aborted in an all-gather's rendezvous ("Termination timeout ... only 1 of 2 arrived"),
  also for a plain ``jnp`` shard_map; one call at a time ran 300 calls without it.
  """
  wait_each = jax.devices()[0].platform == "cpu"

  def sample(inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
      out = fn(*args)
      if wait_each:
        jax.block_until_ready(out)
    jax.block_until_ready(out)
    return time.perf_counter() - start

  jax.block_until_ready(fn(*args))
  inner = 1
  while True:
    elapsed = sample(inner)
    if elapsed >= min_sample_s or inner >= 1024:
      break
    inner *= 2
  samples = [elapsed / inner] + [sample(inner) / inner for _ in range(repeats - 1)]
  samples = np.asarray(samples) * 1e6
  return {"median_us": float(np.median(samples)), "p10_us": float(np.percentile(samples, 10)),
          "p90_us": float(np.percentile(samples, 90)), "inner": inner, "repeats": repeats}


# Kernels of a collective, by name: NCCL's (ncclDevKernel_...), and XLA's own, which it takes
# for small all-reduces between GPUs of one host (a fusion named after the op: psum_7_0_fusion_1).
COLLECTIVE_KERNEL = re.compile(r"nccl|psum|all.?reduce|all.?gather|reduce.?scatter|all.?to.?all|"
                               r"collective", re.IGNORECASE)


def device_time(fn, *args, calls: int = 10, gap_s: float = 0.002) -> dict:
  """What the GPUs did for one call of ``fn(*args)``: ``calls`` calls, each waited for and
  followed by ``gap_s`` of idle devices, under one ``jax.profiler`` trace, read by
  ``per_call_device_time``. Empty (``{}``) off the GPU."""
  if jax.devices()[0].platform != "gpu":
    return {}
  from experiments import profiling
  jax.block_until_ready(fn(*args))

  def run():
    for _ in range(calls):
      jax.block_until_ready(fn(*args))
      time.sleep(gap_s)

  return per_call_device_time(profiling.gpu_trace_lines(run), calls, int(gap_s * 1e9 / 2))


def per_call_device_time(lines: dict, calls: int, min_gap_ns: int) -> dict:
  """Splits a trace's activity (``profiling.gpu_trace_lines``: events by (device plane, line);
  only the "Stream ..." lines, the others repeat them) into ``calls`` calls at idle gaps longer
  than ``min_gap_ns`` on all devices together, and returns medians over the calls:

  - ``device_busy_us``: the busiest device's busy time (union of its kernels and copies);
  - ``device_collective_us``: the collective kernels' busy time (``COLLECTIVE_KERNEL``, by
    name), averaged over the devices; a collective kernel waits inside it for its slowest peer,
    so this holds the transfer and the skew between devices;
  - ``call_span_us``: first activity to last, over all devices (busy time plus the gaps
    between kernels: launch latency and dispatch inside one call);
  - ``devices_traced``, and ``top_kernels``: the five names with the most busy time summed over
    the devices (us a call).

  ``{"device_time_error": ...}`` where the trace does not split into ``calls`` calls."""
  from experiments import kernel_time
  intervals = sorted((start, end, f"{plane}|{name}") for (plane, line), events in lines.items()
                     if line.startswith("Stream") for start, end, name in events)
  groups = kernel_time.split_calls(intervals, min_gap_ns)
  if len(groups) != calls:
    return {"device_time_error": f"{len(groups)} calls in the trace, expected {calls}"}
  busy, collective, span, devices = [], [], [], 0
  totals: collections.Counter = collections.Counter()
  for group in groups:
    per_plane: dict[str, list] = collections.defaultdict(list)
    for start, end, label in group:
      plane, name = label.split("|", 1)
      per_plane[plane].append((start, end, name))
      totals[name[:80]] += (end - start) / 1e3 / calls
    devices = max(devices, len(per_plane))
    busy.append(max(kernel_time.busy_ns(items) for items in per_plane.values()))
    collective.append(np.mean([kernel_time.busy_ns(
        [item for item in items if COLLECTIVE_KERNEL.search(item[2])])
        for items in per_plane.values()]))
    span.append(max(end for _, end, _ in group) - min(start for start, _, _ in group))
  return {"device_busy_us": float(np.median(busy)) / 1e3,
          "device_collective_us": float(np.median(collective)) / 1e3,
          "call_span_us": float(np.median(span)) / 1e3, "devices_traced": devices,
          "top_kernels": [(name, round(us, 1)) for name, us in totals.most_common(5)]}


# -- the same shard_maps without their collectives (for the communication share) ---------------
def local_spmm(A, B):
  """Each device's partial product only: no psum, no all_gather; results stay stacked."""
  def body(pieces, dense):
    piece_b = sharded_ops.local_rows(dense, A.col_cuts, A.piece_shape[1], A.col_axis)
    return jsparse.spmm(partition.piece(pieces, 0, 0), piece_b)[None, None]
  return jax.shard_map(body, mesh=A.mesh, in_specs=(A.spec, P()), out_specs=A.spec,
                       check_vma=False)(A.pieces, B)


def local_mlp(x, weights):
  up, gate, down = weights["up"], weights["gate"], weights["down"]

  def body(up_pieces, gate_pieces, down_pieces, x):
    columns = x.T
    hidden = jax.nn.silu(jsparse.spmm(partition.piece(gate_pieces, 0, 0), columns)) * (
        jsparse.spmm(partition.piece(up_pieces, 0, 0), columns))
    hidden = jnp.pad(hidden, [(0, down.piece_shape[1] - hidden.shape[0]), (0, 0)])
    return jsparse.spmm(partition.piece(down_pieces, 0, 0), hidden)[None]
  return jax.shard_map(body, mesh=up.mesh, in_specs=(up.spec, gate.spec, down.spec, P()),
                       out_specs=P(up.row_axis), check_vma=False)(up.pieces, gate.pieces,
                                                                   down.pieces, x)


def balance(sharded) -> float:
  stored = sharded.piece_stored().astype(np.float64)
  return float(stored.max() / stored.mean()) if stored.mean() > 0 else 1.0


# -- cases -------------------------------------------------------------------------------------
def spmm_cases(grid: dict, counts: list[int]):
  for shape in grid["shapes"]:
    matrix = uniform_random(shape, grid["sparsity"], seed=0, dtype=np.float32)
    for n in grid["n"]:
      dense = jnp.asarray(np.random.default_rng(1).standard_normal((shape[1], n)), DTYPE)
      for devices in counts:
        for split in grid["splits"] if devices > 1 else ["rows"]:
          config = {"op": "spmm", "shape": list(shape), "sparsity": grid["sparsity"], "n": n,
                    "split": split, "devices": devices, "format": "csr"}
          yield config, lambda devices=devices, split=split, matrix=matrix, dense=dense: (
              _run_spmm(matrix, dense, devices, split))


def _mesh(devices: int):
  return jax.make_mesh((devices,), ("x",), devices=jax.devices()[:devices])


def _run_spmm(matrix, dense, devices, split):
  mesh = _mesh(devices)
  A = sharding.shard(matrix, mesh, SPECS[split])
  B = jax.device_put(dense, jax.sharding.NamedSharding(mesh, P()))
  op = jax.jit(sharding.spmm)
  result = {**time_us(op, A, B), **device_time(op, A, B)}
  local = time_us(jax.jit(local_spmm), A, B)
  check = _relative_error(op(A, B), jax.jit(jsparse.spmm)(matrix, dense))
  return result, local, {"balance": balance(A), "max_rel_error_vs_single_device": check}


def mlp_cases(grid: dict, counts: list[int]):
  shapes = {"up": (grid["d_ff"], grid["d_model"]), "gate": (grid["d_ff"], grid["d_model"]),
            "down": (grid["d_model"], grid["d_ff"])}
  weights = {name: uniform_random(shape, grid["sparsity"], seed=seed, dtype=np.float32)
             for seed, (name, shape) in enumerate(shapes.items())}
  for tokens in grid["tokens"]:
    x = jnp.asarray(np.random.default_rng(2).standard_normal((tokens, grid["d_model"])), DTYPE)
    for devices in counts:
      config = {"op": "mlp", "d_model": grid["d_model"], "d_ff": grid["d_ff"],
                "sparsity": grid["sparsity"], "tokens": tokens, "split": "megatron",
                "devices": devices, "format": "csr"}
      yield config, lambda devices=devices, x=x: _run_mlp(weights, x, devices)


def _run_mlp(weights, x, devices):
  mesh = _mesh(devices)
  sharded = sharding.shard_mlp(weights["up"], weights["down"], mesh, "x", gate=weights["gate"])
  x = jax.device_put(x, jax.sharding.NamedSharding(mesh, P()))
  op = jax.jit(sharding.mlp)
  result = {**time_us(op, x, sharded), **device_time(op, x, sharded)}
  local = time_us(jax.jit(local_mlp), x, sharded)
  single = jax.jit(lambda x: jsparse.spmm(weights["down"], jax.nn.silu(
      jsparse.spmm(weights["gate"], x.T)) * jsparse.spmm(weights["up"], x.T)).T)(x)
  return result, local, {"balance": balance(sharded["up"]),
                         "max_rel_error_vs_single_device": _relative_error(op(x, sharded),
                                                                           single)}


def attention_cases(grid: dict, counts: list[int]):
  """Block-sparse attention split by heads, in each of ``grid["dtypes"]`` (float32: the
  reference path; bfloat16 on a GPU: the Pallas kernel of ``jsparse.block_sparse_attention``)."""
  rng = np.random.default_rng(3)
  shape = lambda heads: (grid["batch"], grid["seq"], heads, grid["head_dim"])  # noqa: E731
  draws = [rng.standard_normal(shape(heads)) for heads in
           (grid["heads"], grid["kv_heads"], grid["kv_heads"])]
  mask = jsparse.BlockMask.local_global(grid["seq"], grid["seq"], block_size=(grid["block"],) * 2,
                                        window=grid["window"])
  sizes = {key: value for key, value in grid.items() if key != "dtypes"}
  for dtype in grid["dtypes"]:
    q, k, v = (jnp.asarray(draw, dtype) for draw in draws)
    for devices in counts:
      config = {"op": "attention", **sizes, "dtype": dtype, "split": "heads",
                "devices": devices, "mask": f"local_global(window={grid['window']})"}
      yield config, lambda devices=devices, q=q, k=k, v=v: _run_attention(q, k, v, mask,
                                                                           devices)


def _run_attention(q, k, v, mask, devices):
  mesh = _mesh(devices)
  heads = jax.sharding.NamedSharding(mesh, P(None, None, "x", None))
  placed = [jax.device_put(a, heads) for a in (q, k, v)]
  op = jax.jit(lambda q, k, v: sharding.attention(q, k, v, mask, mesh, "x", causal=True))
  result = {**time_us(op, *placed), **device_time(op, *placed)}
  single = jax.jit(lambda q, k, v: jsparse.block_sparse_attention(q, k, v, mask, causal=True))
  # Heads are independent: the split has no collective, so no "local only" variant is timed.
  return result, None, {"max_rel_error_vs_single_device": _relative_error(op(*placed),
                                                                          single(q, k, v))}


def _relative_error(actual, expected) -> float:
  actual, expected = (np.asarray(a, np.float64) for a in (actual, expected))
  return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


# -- the run -----------------------------------------------------------------------------------
def environment() -> dict:
  device = jax.devices()[0]
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=pathlib.Path(__file__).parent).stdout.strip()
  except OSError:
    commit = ""
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "platform": device.platform, "device_kind": device.device_kind,
          "device_count": jax.device_count(), "jax": jax.__version__,
          "jaxlib": jaxlib.__version__,
          "python": sys.version.split()[0], "commit": commit,
          "host_devices_forced": "xla_force_host_platform_device_count" in os.environ.get(
              "XLA_FLAGS", ""), "cpu_count": os.cpu_count()}


def device_counts(limit: int) -> list[int]:
  available = jax.device_count() if not limit else min(limit, jax.device_count())
  counts = [1]
  while counts[-1] * 2 <= available:
    counts.append(counts[-1] * 2)
  return counts + ([available] if available not in counts else [])


def main(args: argparse.Namespace) -> None:
  started = time.perf_counter()
  grid = QUICK if args.quick else FULL
  counts = device_counts(args.max_devices)
  env = environment()
  args.out.mkdir(parents=True, exist_ok=True)
  results_path = args.out / "results.jsonl"
  print(f"{env['device_count']} x {env['device_kind']} ({env['platform']}), meshes of {counts}",
        flush=True)
  # Interleaved so that a short budget still covers every op on one device first.
  groups = [spmm_cases(grid["spmm"], counts), mlp_cases(grid["mlp"], counts),
            attention_cases(grid["attention"], counts)]
  with results_path.open("w") as results:
    for config, run in _round_robin(groups):
      record = {**config, "grid": "quick" if args.quick else "full", **env}
      if time.perf_counter() - started > args.budget_s:
        record["status"] = f"skipped: past the budget of {args.budget_s:.0f} s"
      else:
        try:
          timed, local, extra = run()
          record.update(timed, **extra, status="ok")
          if local is not None:
            record["local_only_us"] = local["median_us"]
            record["communication_share"] = max(0.0, 1.0 - local["median_us"] /
                                                timed["median_us"])
        except Exception as error:  # one failing case must not stop the batch
          record["status"] = f"error: {type(error).__name__}: {error}"[:2000]
          traceback.print_exc()
      print(json.dumps({k: record.get(k) for k in (
          "op", "shape", "n", "tokens", "split", "devices", "median_us", "communication_share",
          "status")}), flush=True)
      results.write(json.dumps(record) + "\n")
      results.flush()
  write_report(results_path)
  print(f"done in {time.perf_counter() - started:.0f} s: {args.out}", flush=True)


def _round_robin(generators):
  """Cases from each generator in turn (one op's cases do not starve the others)."""
  active = list(generators)
  while active:
    for generator in list(active):
      try:
        yield next(generator)
      except StopIteration:
        active.remove(generator)


# -- table and plot, from the JSON alone ------------------------------------------------------
def _size(record: dict) -> str:
  if record["op"] == "spmm":
    return f"{record['shape'][0]}x{record['shape'][1]} N={record['n']}"
  if record["op"] == "mlp":
    return f"{record['d_ff']}x{record['d_model']} T={record['tokens']}"
  return (f"S={record['seq']} H={record['heads']}/{record['kv_heads']} "
          f"{record.get('dtype', 'float32')}")


def write_report(results_path: pathlib.Path) -> None:
  """``table.md`` (and ``speedup.png`` when matplotlib is there) beside ``results_path``."""
  records = [json.loads(line) for line in results_path.read_text().splitlines() if line]
  one_device = {(r["op"], _size(r)): r for r in records
                if r["devices"] == 1 and r["status"] == "ok"}
  env = records[0] if records else {}
  lines = [f"Sharded benchmark: {env.get('device_count')} x {env.get('device_kind')} "
           f"({env.get('platform')}), jax {env.get('jax')}, {env.get('date')}, commit "
           f"{env.get('commit')}, grid {env.get('grid')}.", "",
           "| op | size | split | devices | median ms | speedup vs 1 | communication share | "
           "device busy ms | collectives, of busy | call span ms | span speedup vs 1 | "
           "nonzero balance (max/mean) | max rel. error vs 1 device | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in records:
    ok = r["status"] == "ok"
    base = one_device.get((r["op"], _size(r)), {})
    cells = [r["op"], _size(r), r["split"], str(r["devices"]),
             f"{r['median_us'] / 1e3:.3f}" if ok else "-",
             f"{base['median_us'] / r['median_us']:.2f}" if ok and base else "-",
             f"{r['communication_share']:.0%}" if "communication_share" in r else "-",
             f"{r['device_busy_us'] / 1e3:.3f}" if "device_busy_us" in r else "-",
             (f"{r['device_collective_us'] / r['device_busy_us']:.0%}"
              if r.get("device_busy_us") else "-"),
             f"{r['call_span_us'] / 1e3:.3f}" if "call_span_us" in r else "-",
             (f"{base['call_span_us'] / r['call_span_us']:.2f}"
              if "call_span_us" in r and "call_span_us" in base else "-"),
             f"{r['balance']:.3f}" if "balance" in r else "-",
             f"{r['max_rel_error_vs_single_device']:.1e}" if ok else "-",
             "ok" if ok else r["status"].split("\n")[0][:120]]
    lines.append("| " + " | ".join(cells) + " |")
  (results_path.parent / "table.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))
  try:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
  except ImportError:
    return
  figure, axis = plt.subplots(figsize=(7, 4.5))
  series: dict = {}
  for r in records:
    base = one_device.get((r["op"], _size(r)))
    if r["status"] == "ok" and base:
      series.setdefault(f"{r['op']} {_size(r)} {r['split']}", []).append(
          (r["devices"], base["median_us"] / r["median_us"]))
  for label, points in sorted(series.items()):
    points = sorted(points)
    if len(points) > 1 or points[0][0] > 1:
      axis.plot(*zip(*points), marker="o", label=label)
  counts = sorted({r["devices"] for r in records})
  axis.plot(counts, counts, "k:", label="linear")
  axis.set(xlabel="devices", ylabel="speedup over 1 device", xscale="log", yscale="log",
           title=f"jsparse.sharding on {env.get('device_kind')} ({env.get('platform')})")
  axis.legend(fontsize=6)
  figure.tight_layout()
  figure.savefig(results_path.parent / "speedup.png", dpi=120)


if __name__ == "__main__":
  if ARGS.redraw is not None:
    write_report(ARGS.redraw)
  else:
    main(ARGS)
