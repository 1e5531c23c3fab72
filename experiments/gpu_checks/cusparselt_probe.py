"""2:4 products through jsparse's cuSPARSELt custom call (``jsparse._gpu.cusparselt``) against
dense ``jnp.dot``, the same with the algorithm ``autotune`` picks, jsparse's default 2:4 path
(``jsparse.spmm`` on an ``NM`` matrix) and torch's
``to_sparse_semi_structured`` (cuSPARSELt as torch drives it), all by device kernel time per call
(``experiments.kernel_time``), on issue 8's shapes: W 4096x4096, 14336x4096, 4096x14336, bf16;
N = 1024, 4096 (prefill), then 16 and 1 (decoding).

    python3 -P experiments/gpu_checks/cusparselt_probe.py OUTDIR [--budget-s 300] [--algs]

``--algs``: instead, every algorithm cuSPARSELt offers at prefill (N = 1024 on the three weights,
N = 4096 on 4096x4096), against dense (OUTDIR/cusparselt_algs.jsonl, .md).

``--crossover``: instead, where cuSPARSELt overtakes the Pallas N:M kernels (what
``cusparselt.ROUTE_MIN_N`` is set from): N = 16 .. 2048 (``--columns``) on the three weights,
lines dense, cuSPARSELt with its default algorithm, with algorithm 3 and with the one
``autotune`` picks, ``jsparse.spmm`` on the ``NM``
matrix (Pallas) and on the ``CompressedNM`` (routed by N) (OUTDIR/cusparselt_crossover.*).
``--shapes 4096x14336`` limits it to some weights.

``--layer``: instead, a linear layer's product ``x [N, K] @ W.T`` on MiniLM's weight shapes
(384x384, 1536x384, 384x1536) and 4096x4096 at N = 128 and 4096: dense, ``jsparse.ops.
matmul_transposed`` on the NM matrix (Pallas), cuSPARSELt through ``matmul`` with a transpose
on each side, and through ``matmul_transposed`` (tokens-major: no transposes) with its default
and its autotuned algorithm, and with x described as a column-major operand
(OUTDIR/cusparselt_layer.*).

Builds the library first (nvcc). Each output is checked against a float32 HIGHEST product of
the same 2:4 weights before it is timed. Writes OUTDIR/cusparselt_probe.jsonl and .md.
"""

from __future__ import annotations

import functools
import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import jsparse  # noqa: E402
from experiments import timing  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from jsparse._gpu import cusparselt  # noqa: E402

BF16 = jnp.bfloat16
SHAPES = ((4096, 4096), (14336, 4096), (4096, 14336))
COLUMNS = (1024, 4096, 16, 1)
TOLERANCE = 2e-2


def two_four_weight(key, shape):
  """(the ``NM`` 2:4 matrix of a random bf16 [M, K] weight, its dense bf16 copy)."""
  values = jax.random.normal(jax.random.fold_in(key, shape[0] + 3 * shape[1]), shape)
  matrix = jsparse.NM.fromdense(values.astype(BF16), n=2, m=4)
  return matrix, matrix.todense()


def torch_timer(record, w_dense, x, expected):
  """torch's cuSPARSELt product on the same values (N padded to 8, as torch needs), its error
  against ``expected`` added to ``record`` as ``launch_checked`` does for the JAX lines."""
  import torch
  from torch.sparse import to_sparse_semi_structured
  a = to_sparse_semi_structured(torch.from_dlpack(w_dense))
  xt = torch.from_dlpack(x)
  if xt.shape[1] % 8:
    xt = torch.nn.functional.pad(xt, (0, -xt.shape[1] % 8))
  timer = timing.TorchCudaTimer([lambda: torch.mm(a, xt)])
  reference = torch.from_dlpack(expected)
  out = timer.run_once()[:, :x.shape[1]].float()
  record["rel_err"] = float((out - reference).abs().max() / reference.abs().max())
  return timer


def algs_main(args) -> None:
  """``--algs``: at prefill, every algorithm cuSPARSELt offers (``alg`` 0 .. ``alg_count`` - 1),
  each against dense and the default launch."""
  table = bench_common.kernel_line_table(args.outdir, "cusparselt_algs", "cuSPARSELt algorithms",
                                         "launch", plan="algs")
  deadline = time.monotonic() + args.budget_s
  key = jax.random.key(0)
  for shape, n in ((4096, 4096), 1024), ((4096, 14336), 1024), ((14336, 4096), 1024), \
                  ((4096, 4096), 4096):
    _, w = two_four_weight(key, shape)
    compressed = cusparselt.compress(w)
    x, expected = bench_common.bf16_columns_and_reference(key, w, n)
    launches = [("dense", bench_common.dense_bf16, (w, x)),
                ("default", cusparselt.matmul, (compressed, x))]
    launches += [(f"alg {alg}", functools.partial(cusparselt.matmul, alg=alg), (compressed, x))
                 for alg in range(cusparselt.alg_count(*shape, n, BF16))]
    bench_common.time_kernel_lines(table, launches, shape=shape, n=n, expected=expected,
                                   deadline=deadline, tolerance=TOLERANCE, column="launch")


CROSSOVER_COLUMNS = (16, 32, 64, 128, 256, 512, 1024, 2048)


def crossover_main(args) -> None:
  """``--crossover``: cuSPARSELt against the Pallas N:M kernels from decoding to prefill."""
  table = bench_common.kernel_line_table(
      args.outdir, "cusparselt_crossover", "cuSPARSELt against the Pallas N:M kernels by N",
      plan="crossover", route_min_n=cusparselt.ROUTE_MIN_N)
  deadline = time.monotonic() + args.budget_s
  key = jax.random.key(0)
  for shape in args.shapes or SHAPES:
    matrix, w = two_four_weight(key, shape)
    routed = cusparselt.from_nm(matrix)
    for n in args.columns or CROSSOVER_COLUMNS:
      x, expected = bench_common.bf16_columns_and_reference(key, w, n)
      tuned = cusparselt.autotune(routed, n)
      lines = [("dense", bench_common.dense_bf16, (w, x)),
               (f"cusparselt-autotuned-alg{tuned}",
                functools.partial(cusparselt.matmul, alg=tuned), (routed, x)),
               ("cusparselt-default-alg", functools.partial(cusparselt.matmul, alg=None)
                if n < cusparselt.PREFILL_MIN_N else None, (routed, x)),
               ("cusparselt-alg3", functools.partial(cusparselt.matmul, alg=3), (routed, x)),
               ("spmm-nm-pallas", lambda a, v: jsparse.spmm(a, v, impl="pallas"), (matrix, x)),
               ("spmm-compressed-routed", jsparse.spmm, (routed, x))]
      # (the default algorithm is algorithm 3 from PREFILL_MIN_N up: no line of its own there)
      bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                     deadline=deadline, tolerance=TOLERANCE)


LAYER_SHAPES = ((384, 384), (1536, 384), (384, 1536), (4096, 4096))


def dense_layer(w, x):
  """The layer's dense ``x @ w.T``, float32 accumulation, bf16 out."""
  return jnp.dot(x, w.T, preferred_element_type=jnp.float32).astype(BF16)


def tokens_major_columns(compressed, x):
  """``matmul_transposed`` with x described to cuSPARSELt as a column-major [K, N] operand."""
  return cusparselt._product(compressed, x, alg=None, layout=cusparselt.TOKENS_MAJOR_COLUMNS)


LAYER_TOKENS = (128, 4096)


def layer_main(args) -> None:
  """``--layer``: ``x @ W.T`` with x [N, K] tokens-major, as a linear layer calls it."""
  table = bench_common.kernel_line_table(
      args.outdir, "cusparselt_layer", "A layer's x @ W.T: cuSPARSELt layouts against dense",
      plan="layer")
  deadline = time.monotonic() + args.budget_s
  key = jax.random.key(0)
  for shape in args.shapes or LAYER_SHAPES:
    matrix, w = two_four_weight(key, shape)
    compressed = cusparselt.from_nm(matrix)
    for n in LAYER_TOKENS:
      columns, expected = bench_common.bf16_columns_and_reference(key, w, n)
      x, expected = jnp.asarray(columns.T), expected.T  # tokens-major, contiguous
      tuned = cusparselt.autotune(compressed, n, tokens_major=True)
      lines = [("dense", dense_layer, (w, x)),
               ("spmm-nm-pallas", lambda a, v: jsparse.ops.matmul_transposed(v, a, impl="pallas"),
                (matrix, x)),
               ("cusparselt-transposes", lambda c, v: cusparselt.matmul(c, v.T).T,
                (compressed, x)),
               ("cusparselt-tokens-major", lambda c, v: cusparselt.matmul_transposed(v, c),
                (compressed, x)),
               ("cusparselt-tokens-major-columns", tokens_major_columns, (compressed, x)),
               (f"cusparselt-tokens-major-alg{tuned}",
                functools.partial(lambda c, v, alg: cusparselt.matmul_transposed(v, c, alg=alg),
                                  alg=tuned), (compressed, x))]
      bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                     deadline=deadline, tolerance=TOLERANCE)


def main() -> None:
  def options(parser):
    parser.add_argument("--algs", action="store_true", help="every cuSPARSELt algorithm at prefill")
    parser.add_argument("--crossover", action="store_true",
                        help="cuSPARSELt against the Pallas N:M kernels by N")
    parser.add_argument("--shapes", type=lambda text: [tuple(map(int, shape.split("x")))
                                                       for shape in text.split(",")],
                        help="the weights of --crossover or --layer, e.g. 4096x14336")
    parser.add_argument("--columns", type=lambda text: [int(n) for n in text.split(",")],
                        help="--crossover's N, e.g. 8,16,32")
    parser.add_argument("--layer", action="store_true",
                        help="a layer's x @ W.T through each cuSPARSELt layout")

  args = bench_common.probe_arguments(__doc__, options)
  started = time.monotonic()
  library = cusparselt.build(verbose=True)
  if args.algs:
    algs_main(args)
    return
  if args.crossover:
    crossover_main(args)
    return
  if args.layer:
    layer_main(args)
    return
  meta = bench_common.probe_meta(dtype="bfloat16", pattern="2:4", library=str(library),
                                 kernel_time="experiments.kernel_time.measure, median us")
  header = ("| W | N | line | kernel us | dense / this | wall us | rel err |\n"
            "|---|---|---|---|---|---|---|")
  table = bench_common.ProbeTable(args.outdir, "cusparselt_probe", "2:4 through cuSPARSELt",
                                  meta, header)
  key = jax.random.key(0)
  for shape in SHAPES:
    matrix, w = two_four_weight(key, shape)
    start = time.monotonic()
    compressed = cusparselt.compress(w)
    jax.block_until_ready(compressed.data)
    compress_s = time.monotonic() - start
    for n in COLUMNS:
      if time.monotonic() - started > args.budget_s:
        table.add({"shape": shape, "n": n, "error": "skipped: budget"},
                  f"| {shape[0]}x{shape[1]} | {n} | - | skipped | | | |")
        continue
      x, expected = bench_common.bf16_columns_and_reference(key, w, n)
      lines = {
          "dense": (bench_common.dense_bf16, (w, x)),
          "jsparse-cusparselt": (cusparselt.matmul, (compressed, x)),
          "jsparse-cusparselt-autotuned": (
              functools.partial(cusparselt.matmul, alg=cusparselt.autotune(compressed, n)),
              (compressed, x)),
          "jsparse-nm-default": (lambda a, v: jsparse.spmm(a, v, impl="pallas"), (matrix, x)),
      }
      timers = {line: functools.partial(bench_common.launch_checked, fn=fn, operands=operands,
                                        expected=expected)
                for line, (fn, operands) in lines.items()}
      timers["torch-cusparselt"] = lambda record: torch_timer(record, w, x, expected)
      dense_us = None
      for line, make_timer in timers.items():
        record = {"shape": list(shape), "n": n, "line": line,
                  "compress_s": round(compress_s, 3)}
        bench_common.time_line(record, make_timer, tolerance=TOLERANCE, wall=True)
        dense_us = record.get("kernel_median_us") if line == "dense" else dense_us
        table.add(record, f"| {shape[0]}x{shape[1]} | {n} | {line} | "
                  f"{bench_common.kernel_cells(record, dense_us)} | "
                  f"{record.get('wall_median_us', 0):.1f} | "
                  f"{bench_common.rel_err_cell(record)} |")


if __name__ == "__main__":
  main()
