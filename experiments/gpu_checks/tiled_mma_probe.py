"""Which launch of the CUDA tiled kernel (``jsparse._gpu.sparse_mma.tiled_matmul``) is fastest,
and is every launch right? Issue 8's unstructured decoding shapes, in one run.

1. Checks every launch of ``CONFIGS`` against a float64 product on ragged shapes (M not a
   multiple of 16 and odd row-tile counts, K not of 64, more K tiles a warp than its lanes hold
   starts for, empty rows), N = 1, 9, 16, 32, bfloat16 and float16 (``checks.md``).
2. Times, by device kernel time per call (``experiments.kernel_time``; one copy of the operands,
   so working sets under the L2's 50 MB run partly warm: this ranks launches, the suite's
   ``structured_bench.py`` gives the reported numbers), weights 4096x14336 and 14336x4096 at
   sparsity 0.5 / 0.7 / 0.9 and N = 1, 8, 16, 32: dense ``jnp.dot`` and each launch
   (``tiled_mma.md``).

    python3 -P experiments/gpu_checks/tiled_mma_probe.py OUTDIR [--budget-s 300]
        [--sparsities 0.7,0.9] [--columns 1,8] [--configs 1-16-2,2-8-1] [--no-checks]

(``--configs``: launches as m_tiles-warps-stages[-capacity[-k_splits[-x_sharing]]], in place
of ``CONFIGS``; capacity a number of values, or ``a`` for ``sparse_mma.tile_capacity`` of the
matrix's mean tile; left out, a full tile, one split and x staged a warp. Launches sharing x
are skipped at N = 1, which reaches the kernel tokens-major.)
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from experiments.gpu_checks import bench_common  # noqa: E402
from experiments.gpu_checks.sparse_mma_probe import build_library  # noqa: E402
from jsparse._gpu import sparse_mma  # noqa: E402

Config = sparse_mma.TiledMmaConfig
CONFIGS = (Config(1, 8, 2), Config(1, 16, 2), Config(1, 16, 3), Config(1, 8, 3), Config(2, 8, 2),
           Config(2, 4, 2), Config(2, 16, 1), Config(1, 16, 1))
SHAPES = ((4096, 14336), (14336, 4096))
SPARSITIES = (0.7, 0.5, 0.9)
COLUMNS = (1, 8, 16, 32)
# (M, K, warps of the launch checked there): 40 rows = 3 row tiles (odd, for m_tiles = 2);
# 70 K tiles on one warp walk three rounds of starts.
CHECK_SHAPES = ((40, 100), (1, 64), (33, 4480), (300, 1000), (16, 64))
CHECK_COLUMNS = (1, 9, 16, 32)
TOLERANCE = 2e-2


def parse_config(spec: str):
  """``m-w-s``, ``m-w-s-c``, ``m-w-s-c-k`` or ``m-w-s-c-k-x`` (c: values, or ``a`` for the
  matrix's ``tile_capacity``; k: K splits; x: warps sharing x's staging): a function of the
  matrix giving its launch."""
  fields = spec.split("-")
  m_tiles, warps, stages = map(int, fields[:3])
  capacity = fields[3] if len(fields) > 3 else str(sparse_mma.TILE_VALUES)
  k_splits = int(fields[4]) if len(fields) > 4 else 1
  x_sharing = int(fields[5]) if len(fields) > 5 else 1

  def resolve(matrix):
    c = (auto_capacity(matrix) if capacity == "a" else int(capacity))
    return Config(m_tiles, warps, stages, c, k_splits, x_sharing)
  resolve.label = spec
  return resolve


def auto_capacity(matrix) -> int:
  return sparse_mma.tile_capacity(sparse_mma.mean_tile_fill(matrix.data, matrix.bitmaps))


def takes(config, n: int, k: int) -> bool:
  """Whether ``tiled_matmul`` takes this launch for x [k, n]."""
  return config.fits(n, k) and config.stages_x(n, k)


def fixed(config):
  resolve = lambda matrix: config  # noqa: E731
  resolve.label = f"{config.m_tiles}-{config.warps}-{config.stages}"
  return resolve


def random_tiled(rng, shape, density, dtype):
  w = rng.standard_normal(shape).astype(np.float32) * (rng.random(shape) < density)
  if shape[0] > 2:
    w[1] = 0.0
  return jsparse.Tiled.fromdense(jnp.asarray(w, dtype), tile_shape=(16, 64))


def check_launch(launch, expected: np.ndarray) -> tuple[float | str, bool]:
  """(error relative to ``expected``'s largest magnitude, or why ``launch()`` failed; whether
  its output has ``expected``'s shape, is finite and within ``TOLERANCE``)."""
  try:
    out = np.asarray(launch(), np.float64)
    err = float(np.abs(out - expected).max() / max(np.abs(expected).max(), 1.0))
    return err, bool(out.shape == expected.shape and np.isfinite(out).all() and err < TOLERANCE)
  except Exception as error:  # noqa: BLE001 - record and go on
    return f"{type(error).__name__}: {error}"[:120], False


def check_cases(rng, shapes, columns, densities=lambda shape: (0.3,)):
  """Yields (shape, density, dtype, matrix, n, x, float64 product) for each check: a random
  Tiled matrix (``random_tiled``) of each shape, bf16 and f16, at each of ``densities(shape)``,
  times random x of each of ``columns``."""
  for shape in shapes:
    for dtype in (jnp.bfloat16, jnp.float16):
      for density in densities(shape):
        matrix = random_tiled(rng, shape, density, dtype)
        dense = np.asarray(matrix.todense(), np.float64)
        for n in columns:
          x = jnp.asarray(rng.standard_normal((shape[1], n)), dtype)
          yield shape, density, dtype, matrix, n, x, dense @ np.asarray(x, np.float64)


def timing_cases(sparsities, shapes, columns):
  """Yields (sparsity, shape, matrix, dense w, n, x, expected) for the timed cases: a random
  bf16 Tiled matrix (``random_tiled``, seeded by its row count) of each shape at each sparsity,
  times bf16 columns of each of ``columns`` (``bench_common.bf16_columns_and_reference``)."""
  key = jax.random.key(0)
  for sparsity in sparsities:
    for shape in shapes:
      matrix = random_tiled(np.random.default_rng(shape[0]), shape, 1 - sparsity, jnp.bfloat16)
      w = matrix.todense()
      for n in columns:
        x, expected = bench_common.bf16_columns_and_reference(key, w, n)
        yield sparsity, shape, matrix, w, n, x, expected


class CheckTable:
  """The rows of ``checks.md``: one launch checked (``check_launch``) a row."""

  def __init__(self):
    self.rows, self.failures = [], 0

  def add(self, shape, density, dtype, n, config, launch, expected) -> None:
    err, ok = check_launch(launch, expected)
    self.failures += not ok
    self.rows.append(f"| {shape} | {density} | {jnp.dtype(dtype).name} | {n} | {config} | "
                     f"{err} | {'ok' if ok else 'WRONG'} |")

  def check_all(self, cases, launches, product) -> None:
    """For each case of ``check_cases``, each launch ``launches(matrix, n, shape)`` yields
    (the ones the kernel takes), checked as ``product(matrix, x, shape, config)``."""
    for shape, density, dtype, matrix, n, x, expected in cases:
      for config in launches(matrix, n, shape):
        self.add(shape, density, dtype, n, config,
                 lambda: product(matrix, x, shape, config), expected)

  def write(self, outdir: pathlib.Path) -> int:
    """Writes OUTDIR/checks.md, prints the count; returns the failures."""
    (outdir / "checks.md").write_text(
        "| shape | density | dtype | N | config | rel err | |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(self.rows) + "\n")
    print(f"checks: {len(self.rows)} launches, {self.failures} wrong", flush=True)
    return self.failures


def tiled_product(matrix, x, shape, config):
  return sparse_mma.tiled_matmul(matrix.data, matrix.bitmaps, matrix.row_offsets, x,
                                 shape=shape, config=config)


def run_checks(outdir: pathlib.Path, configs) -> int:
  resolves = configs + (fixed(Config(1, 1, 2)), fixed(Config(2, 1, 4)), parse_config("4-2-2-8"),
                        parse_config("4-3-2-a"), parse_config("4-3-2-a-3"))
  table = CheckTable()
  table.check_all(check_cases(np.random.default_rng(0), CHECK_SHAPES, CHECK_COLUMNS),
                  lambda matrix, n, shape: [c for c in (r(matrix) for r in resolves)
                                            if takes(c, n, shape[1])], tiled_product)
  return table.write(outdir)


def arguments(parser) -> None:
  parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
  parser.add_argument("--columns", default=",".join(map(str, COLUMNS)))
  parser.add_argument("--configs", default="",
                      help="m_tiles-warps-stages launches, comma-separated (default: CONFIGS)")
  parser.add_argument("--no-checks", action="store_true")


def main() -> None:
  args = bench_common.probe_arguments(__doc__, arguments)
  configs = (tuple(parse_config(c) for c in args.configs.split(","))
             if args.configs else tuple(fixed(c) for c in CONFIGS))
  build_library()
  if not args.no_checks:
    run_checks(args.outdir, configs)
  table = bench_common.kernel_line_table(args.outdir, "tiled_mma", "tiled decoding launches",
                                         pattern="uniform random, 16x64 tiles")
  deadline = time.monotonic() + args.budget_s
  for sparsity, shape, matrix, w, n, x, expected in timing_cases(
      map(float, args.sparsities.split(",")), SHAPES, tuple(map(int, args.columns.split(",")))):
    lines = [("dense", bench_common.dense_bf16, (w, x))]
    launches = [(resolve.label, resolve(matrix)) for resolve in configs]
    lines += [(f"s{sparsity} {label} (c{c.capacity})",
               lambda d, b, o, v, c=c, shape=shape: sparse_mma.tiled_matmul(
                   d, b, o, v, shape=shape, config=c),
               (matrix.data, matrix.bitmaps, matrix.row_offsets, x))
              for label, c in launches if takes(c, n, shape[1])]
    bench_common.time_kernel_lines(table, lines, shape=shape, n=n, expected=expected,
                                   deadline=deadline, tolerance=TOLERANCE)


if __name__ == "__main__":
  main()
