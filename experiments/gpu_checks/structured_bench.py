"""Times the tensor-core kernels of issue 8 (BSR, 2:4, tiled unstructured) against the baselines.

bfloat16 throughout, float32 accumulation; weights W [M, K] times X [K, N]:
- BSR (32x32 blocks) 4096x4096 and 14336x4096, N in {128, 1024}, block density {0.05, 0.2, 0.5}
  vs dense ``jnp.dot`` and ``torch.sparse._triton_ops.bsr_dense_mm`` on the same matrix;
- 2:4 on 4096x4096, 14336x4096, 4096x14336, N in {1, 8, 16} (decoding) and 1024 (prefill) vs
  dense and torch ``to_sparse_semi_structured`` (cuSPARSELt);
- tiled (16x64 tiles) at sparsity {0.5, 0.7, 0.9} on 4096x14336 and 14336x4096, N in {1, 8, 16,
  32} vs dense.
Every jsparse result is checked against a float32 product of the same (rounded) matrix before it
is timed (``rel_err``). Per-case errors are recorded and the run goes on; cases stop once the time
budget is spent (the rest are listed as skipped). Timing: ``timing.JaxLoopTimer`` (jitted
fori_loop) for JAX, ``timing.TorchCudaTimer`` (CUDA events) for torch; operand copies rotate when
the working set is near the 50 MiB L2 of the H100.

  python3 -P experiments/gpu_checks/structured_bench.py OUTDIR [--smoke] [--budget-s 90]

Writes OUTDIR/structured_bench.json and OUTDIR/structured_bench.md and prints the table last.
``--smoke``: tiny shapes, Pallas interpret mode, on whatever platform JAX has.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import time
import traceback
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments import timing
from jsparse.formats import BSR, NM, Tiled
from pallas_kernels import bsr_spmm, nm_matmul, tiled_spmm

L2_BYTES = 50 * 2**20
BF16 = jnp.bfloat16


@dataclasses.dataclass(frozen=True)
class Case:
  family: str  # "bsr", "nm", "tiled"
  shape: tuple[int, int]
  n: int
  density: float  # of blocks (BSR), of values (2:4: 0.5; tiled: 1 - sparsity)


def cases(smoke: bool) -> list[Case]:
  """Cases in priority order (the headline targets first, so a short budget keeps them)."""
  if smoke:
    return [Case("bsr", (64, 64), 32, 0.5), Case("nm", (64, 128), 8, 0.5),
            Case("tiled", (64, 128), 8, 0.3)]
  # N varies fastest: consecutive cases share one weight matrix (built once).
  out = [Case("nm", shape, n, 0.5) for shape in ((4096, 4096), (14336, 4096), (4096, 14336))
         for n in (1, 8, 16, 1024)]
  out += [Case("tiled", shape, n, round(1 - sparsity, 2)) for sparsity in (0.7, 0.5, 0.9)
          for shape in ((4096, 14336), (14336, 4096)) for n in (1, 8, 16, 32)]
  out += [Case("bsr", shape, n, density) for density in (0.05, 0.2, 0.5)
          for shape in ((4096, 4096), (14336, 4096)) for n in (128, 1024)]
  return out


def weights(rng: np.random.Generator, case: Case) -> tuple[Any, np.ndarray]:
  """(jsparse matrix, float32 dense copy of exactly its values)."""
  rows, cols = case.shape
  values = rng.standard_normal(case.shape, dtype=np.float32)
  if case.family == "bsr":
    keep = rng.random((rows // 32, cols // 32)) < case.density
    dense = np.where(np.kron(keep, np.ones((32, 32), bool)), values, 0)
    matrix = BSR.fromdense(jnp.asarray(dense, BF16), block_shape=(32, 32))
  elif case.family == "nm":
    matrix = NM.fromdense(jnp.asarray(values, BF16), n=2, m=4)
  else:
    dense = np.where(rng.random(case.shape) < case.density, values, 0)
    matrix = Tiled.fromdense(jnp.asarray(dense, BF16), tile_shape=(16, 64))
  return matrix, np.asarray(matrix.todense().astype(jnp.float32))


def kernel(case: Case, interpret: bool) -> Callable[..., jax.Array]:
  """fn(matrix, x) running the case's kernel with the configuration jsparse._gpu would pick."""
  from jsparse._gpu import structured
  if case.family == "bsr":
    return lambda a, x: bsr_spmm.kernel_fn(
        a.data, a.col_indices, a.row_offsets, x, shape=a.shape,
        config=structured.bsr_config(a.layout, x.shape[1]), interpret=interpret)
  if case.family == "nm":
    return lambda a, x: nm_matmul.kernel_fn(
        a.data, a.indices, x, shape=a.shape, nm=(a.n, a.m),
        config=structured.nm_config(a.layout, x.shape[1]), interpret=interpret)
  return lambda a, x: tiled_spmm.kernel_fn(
      a.data, a.bitmaps, a.row_offsets, x, shape=a.shape,
      config=structured.tiled_config(a.layout, x.shape[1]), interpret=interpret)


def matrix_bytes(matrix) -> int:
  return sum(int(a.size) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(matrix))


def time_jax(fn, operands: tuple, working_set: int, config) -> dict:
  copies = timing.operand_copies(working_set, L2_BYTES)
  sets = [operands] + [jax.tree_util.tree_map(jnp.copy, operands) for _ in range(copies - 1)]
  timer = timing.JaxLoopTimer(fn, sets)
  out = timer.run_once()
  result = timer.measure(config).asdict()
  result["cache"] = timing.cache_state(working_set, L2_BYTES, copies)
  return result, out


def time_torch(make_call: Callable[[], Callable[[], Any]], working_set: int, config) -> dict:
  import torch
  if not torch.cuda.is_available():
    return {"error": "skipped: no CUDA for torch"}
  copies = timing.operand_copies(working_set, L2_BYTES)
  timer = timing.TorchCudaTimer([make_call() for _ in range(copies)])
  timer.run_once()
  result = timer.measure(config).asdict()
  result["cache"] = timing.cache_state(working_set, L2_BYTES, copies)
  return result


def torch_baseline(case: Case, dense: np.ndarray, x: np.ndarray) -> Callable[[], Callable]:
  """A factory of torch calls (one per operand copy) for the case's torch line, or None."""
  import torch
  if case.family == "tiled" or not torch.cuda.is_available():
    return None
  w = torch.from_numpy(dense).to("cuda", torch.bfloat16)
  xt = torch.from_numpy(x).to("cuda", torch.bfloat16)
  if case.family == "bsr":
    from torch.sparse._triton_ops import bsr_dense_mm
    def make():
      a = w.clone().to_sparse_bsr((32, 32))
      b = xt.clone()
      return lambda: bsr_dense_mm(a, b)
    return make
  from torch.sparse import to_sparse_semi_structured
  def make():
    a = to_sparse_semi_structured(w.clone())
    # cuSPARSELt needs N a multiple of 8 (at least 8 columns, also for decoding).
    b = torch.nn.functional.pad(xt, (0, -x.shape[1] % 8)) if x.shape[1] % 8 else xt.clone()
    return lambda: torch.mm(a, b)
  return make


def run(outdir: pathlib.Path, smoke: bool, budget_s: float) -> list[dict]:
  config = timing.TimingConfig(repeats=5, min_repeats=3, min_sample_s=0.002, max_total_s=0.4)
  if smoke:
    config = timing.TimingConfig(repeats=1, min_repeats=1, min_sample_s=0.0, max_total_s=0.0,
                                 max_inner=1)
  rng = np.random.default_rng(0)
  start, rows, dense_cache, built = time.monotonic(), [], {}, {}
  for case in cases(smoke):
    row = {**dataclasses.asdict(case)}
    rows.append(row)
    if time.monotonic() - start > budget_s:
      row["error"] = "skipped: time budget spent"
      continue
    try:
      key = (case.family, case.shape, case.density)
      if key not in built:
        built.clear()  # one weight matrix on the device at a time
        built[key] = weights(rng, case)
      matrix, dense = built[key]
      x = rng.standard_normal((case.shape[1], case.n), dtype=np.float32)
      xj = jnp.asarray(x, BF16)
      x32 = np.asarray(xj.astype(jnp.float32))
      expected = np.asarray(jnp.dot(jnp.asarray(dense), jnp.asarray(x32),
                                    precision=jax.lax.Precision.HIGHEST))
      out_bytes = case.shape[0] * case.n * 2
      sparse_set = matrix_bytes(matrix) + xj.size * 2 + out_bytes
      result, out = time_jax(kernel(case, smoke), (matrix, xj), sparse_set, config)
      row["rel_err"] = float(np.max(np.abs(np.asarray(out, np.float32) - expected))
                             / (np.max(np.abs(expected)) + 1e-30))
      row["jsparse"] = result
      row["weight_bytes"] = matrix_bytes(matrix)
      key = (case.shape, case.n)
      if key not in dense_cache:  # the dense time depends on the shapes only
        wj = jnp.asarray(dense, BF16)
        dense_cache[key], _ = time_jax(lambda w, v: jnp.dot(w, v, preferred_element_type=jnp.float32).astype(BF16),
                                       (wj, xj), wj.size * 2 + xj.size * 2 + out_bytes, config)
      row["dense"] = dense_cache[key]
      make = None if smoke else torch_baseline(case, dense, x32)
      if make is not None:
        try:
          row["torch"] = time_torch(make, sparse_set, config)
        except Exception as error:  # noqa: BLE001 - a baseline failing must not stop the run
          row["torch"] = {"error": f"{type(error).__name__}: {error}"[:300]}
    except Exception as error:  # noqa: BLE001 - record and go on
      row["error"] = f"{type(error).__name__}: {error}"[:500]
      row["traceback"] = traceback.format_exc()[-1500:]
    print(summary_line(row), flush=True)
  return rows


def _us(entry: Any) -> str:
  if isinstance(entry, dict) and "median_us" in entry:
    return f"{entry['median_us']:.1f}"
  return "-" if entry is None else "err"


def summary_line(row: dict) -> str:
  sparse, dense = row.get("jsparse"), row.get("dense")
  speedup = (f"{dense['median_us'] / sparse['median_us']:.2f}x"
             if sparse and dense and "median_us" in sparse else "-")
  torch_entry = row.get("torch")
  vs_torch = (f"{torch_entry['median_us'] / sparse['median_us']:.2f}x"
              if sparse and isinstance(torch_entry, dict) and "median_us" in torch_entry else "-")
  err = f"{row['rel_err']:.1e}" if "rel_err" in row else "-"
  note = row.get("error", "") or (torch_entry or {}).get("error", "")
  return (f"| {row['family']} | {row['shape'][0]}x{row['shape'][1]} | {row['n']} | "
          f"{row['density']} | {_us(sparse)} | {_us(dense)} | {speedup} | {_us(torch_entry)} | "
          f"{vs_torch} | {err} | {note[:80]} |")


HEADER = ("| format | W (MxK) | N | density | jsparse us | dense us | dense/jsparse | torch us | "
          "torch/jsparse | rel err | note |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--budget-s", type=float, default=90.0)
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  rows = run(args.outdir, args.smoke, args.budget_s)
  meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
          "dtype": "bfloat16", "smoke": args.smoke}
  try:
    import torch
    meta["torch"] = torch.__version__
  except ImportError:
    pass
  (args.outdir / "structured_bench.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                                indent=1))
  table = "\n".join([HEADER] + [summary_line(row) for row in rows])
  (args.outdir / "structured_bench.md").write_text(f"{json.dumps(meta)}\n\n{table}\n")
  print(table)


if __name__ == "__main__":
  main()
