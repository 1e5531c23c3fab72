"""Pruned MiniLM's CSR SpMMs on the GPU by path (``JSPARSE_CSR_SPMM_PATH``): for a
magnitude-pruned variant (bfloat16, as ``gpu_bench.sh``) and a token count, the whole forward
pass's latency with the row kernels only ("rows"), with the default choice per layer ("auto":
dense rows where ``csr_spmm_dense.prefers_dense`` picks them) and with dense rows in every layer
("dense"; ``minilm_pruning.latency``), the Pallas kernels named in the compiled HLO under "auto";
then each distinct pruned weight shape's ``jsparse.spmm(W, x.T)`` (the layer's call) on each
path and the dense ``x @ W.T`` of the same weight, one JaxLoopTimer each. (The dense path through
a Pallas product lost inside the forward pass though it won alone: H100, 2026-11-26,
``--profile`` found the transposes around it.)

    python3 -P experiments/models/minilm_spmm_paths.py OUTDIR [--variant magnitude-70%]
        [--shape 8x512] [--profile]

Writes OUTDIR/minilm_spmm_paths.json and prints it. ``--profile`` also traces the timed loop of
the forward pass on both paths (``jax.profiler``) and adds, per way, the GPU kernels' summed time
by name, their total busy time and the span of the trace (busy < span: the GPU waited).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import re
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import jsparse  # noqa: E402
from experiments import profiling  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.models import minilm_pruning  # noqa: E402
from pallas_kernels import csr_spmm_dense  # noqa: E402
from experiments.timing import JaxLoopTimer, TimingConfig  # noqa: E402
from jsparse._gpu import csr as gpu_csr  # noqa: E402


def kernel_profile(fn, operands: tuple, trace_dir: pathlib.Path, iterations: int = 4) -> dict:
  """GPU kernel time of ``fn`` run ``iterations`` x 2 times in the timer's jitted loop, traced
  (``experiments.profiling.loop_profile``; "iterations" counts the calls)."""
  profile = profiling.loop_profile(JaxLoopTimer(fn, [operands], unroll=2), trace_dir, iterations)
  return {**profile, "iterations": iterations * 2}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--variant", default="magnitude-70%")
  parser.add_argument("--shape", default="8x512")
  parser.add_argument("--profile", action="store_true")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  batch, seq = map(int, args.shape.split("x"))
  model, _ = minilm_pruning.build(args.variant, dtype=jnp.bfloat16)
  ids = jnp.asarray(np.random.default_rng(0).integers(1000, 30000, size=(batch, seq)), jnp.int32)
  graphdef, state = nnx.split(model)
  env = gpu_csr.SPMM_PATH_ENV_VAR

  def with_path(path: str, fn):
    previous = os.environ.get(env)
    os.environ[env] = path
    jax.clear_caches()  # the choice is made when a call is lowered: no lowering may be reused
    try:
      return fn()
    finally:
      os.environ[env] = previous or ""

  def apply(state, ids):
    return nnx.merge(graphdef, state)(ids)

  hlo = with_path("auto", lambda: jax.jit(apply).lower(state, ids).compile().as_text())
  names = collections.Counter(re.findall(r"jsparse_[a-z_]+|_spmm_kernel|_spmv_kernel", hlo))
  model_us = {
      label: with_path(path, lambda: minilm_pruning.latency(model, (batch, seq)))[
          "median_s"] * 1e6
      for label, path in (("row kernels", "rows"),
                          ("auto (dense rows where preferred)", "auto"),
                          ("dense rows everywhere", "dense"))}
  profiles = {}
  if args.profile:
    for label in ("rows", "auto"):
      profiles[label] = with_path(label, lambda: kernel_profile(
          apply, (state, ids), args.outdir / f"trace-{label}"))
  weights = {}
  for path, value in nnx.iter_graph(model):
    matrix = getattr(value, "matrix", None)
    if isinstance(matrix, jsparse.CSR) and matrix.shape not in weights:
      weights[matrix.shape] = matrix
  config = TimingConfig(repeats=5, min_sample_s=0.02, max_total_s=0.5)
  tokens = batch * seq
  rng = np.random.default_rng(1)
  layers = []
  for shape, matrix in weights.items():
    x = jnp.asarray(rng.standard_normal((tokens, shape[1])), matrix.data.dtype)
    dense_w = jnp.asarray(matrix.todense(), matrix.data.dtype)
    layer = {"shape": list(shape), "dtype": str(matrix.data.dtype),
             "nse": int(matrix.data.shape[0]),
             "prefers_dense": bool(csr_spmm_dense.prefers_dense(
                 *shape, tokens, int(matrix.data.shape[0]), matrix.data.dtype))}
    for label, path in (("rows_us", "rows"), ("dense_rows_us", "dense")):
      layer[label] = with_path(path, lambda: JaxLoopTimer(
          lambda m, x: jsparse.spmm(m, x.T).T, [(matrix, x)]).measure(config).median_us)
    layer["dense_matmul_us"] = JaxLoopTimer(lambda w, x: x @ w.T, [(dense_w, x)]).measure(
        config).median_us
    layers.append(layer)
  result = {**bench_common.probe_meta(variant=args.variant, shape=args.shape),
            "hlo_kernel_names_with_dense_path": dict(names), "model_us": model_us,
            "layers": layers, "profiles": profiles}
  (args.outdir / "minilm_spmm_paths.json").write_text(json.dumps(result, indent=1))
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
