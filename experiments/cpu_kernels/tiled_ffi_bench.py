"""The C++ tiled (bitmap) SpMM on the CPU against the other ways of computing the same product.

For a uniform random [M, K] float32 matrix at each sparsity and N: ``jsparse.spmm`` on a
``Tiled`` (16x64 tiles) through the C++ kernel (``impl="ffi"``) and through the reference
lowering, on a ``CSR`` of the same matrix through its C++ kernel, and the dense ``jnp.dot``
(float32, HIGHEST). Each line is checked against a float64 product, then timed by
``experiments.timing.JaxLoopTimer`` (jitted loop, medians).

    python -P experiments/cpu_kernels/tiled_ffi_bench.py OUTDIR [--shape 2048x2048]
        [--sparsities 0.7,0.9] [--ns 1,32,128]

Writes OUTDIR/tiled_ffi_bench.json (machine, versions, date) and tiled_ffi_bench.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from experiments import machine, timing  # noqa: E402

LINES = {
    "tiled-ffi": lambda A, B: jsparse.spmm(A["tiled"], B, impl="ffi"),
    "tiled-reference": lambda A, B: jsparse.spmm(A["tiled"], B, impl="reference"),
    "csr-ffi": lambda A, B: jsparse.spmm(A["csr"], B, impl="ffi"),
    "dense-fp32": lambda A, B: jnp.dot(A["dense"], B, precision=jax.lax.Precision.HIGHEST),
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--shape", default="2048x2048")
  parser.add_argument("--sparsities", default="0.7,0.9")
  parser.add_argument("--ns", default="1,32,128")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  rows, cols = map(int, args.shape.split("x"))
  config = timing.TimingConfig(repeats=5, max_total_s=1.0)
  rng = np.random.default_rng(0)
  records = []
  table = ["| sparsity | N | " + " | ".join(f"{name} us" for name in LINES)
           + " | dense / tiled-ffi | csr-ffi / tiled-ffi |",
           "|---|---|" + "---|" * (len(LINES) + 2)]
  for sparsity in map(float, args.sparsities.split(",")):
    w = (rng.standard_normal((rows, cols)) * (rng.random((rows, cols)) >= sparsity))
    dense = jnp.asarray(w, jnp.float32)
    operands = {"tiled": jsparse.Tiled.fromdense(dense, tile_shape=(16, 64)),
                "csr": jsparse.CSR.fromdense(dense), "dense": dense}
    w64 = np.asarray(dense, np.float64)
    for n in map(int, args.ns.split(",")):
      b = jnp.asarray(rng.standard_normal((cols, n)), jnp.float32)
      expected = w64 @ np.asarray(b, np.float64)
      record = {"shape": [rows, cols], "sparsity": sparsity, "n": n, "lines": {}}
      for name, fn in LINES.items():
        timer = timing.JaxLoopTimer(fn, [(operands, b)])
        out = np.asarray(timer.launch(), np.float64)
        err = float(np.abs(out - expected).max() / np.abs(expected).max())
        if not err < 1e-4:
          raise AssertionError(f"{name} at sparsity {sparsity}, N = {n}: rel err {err:.1e}")
        result = timer.measure(config)
        record["lines"][name] = {"median_us": result.median_us, "rel_err": err}
        print(f"sparsity {sparsity} N {n} {name}: {result.median_us:.1f} us", flush=True)
      records.append(record)
      us = {name: line["median_us"] for name, line in record["lines"].items()}
      table.append(f"| {sparsity} | {n} | " + " | ".join(f"{us[name]:.1f}" for name in LINES)
                   + f" | {us['dense-fp32'] / us['tiled-ffi']:.2f}x"
                   f" | {us['csr-ffi'] / us['tiled-ffi']:.2f}x |")
  meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "machine": dataclasses.asdict(machine.detect()), "jax": jax.__version__,
          "dtype": "float32", "tile_shape": [16, 64],
          "timing": "experiments.timing.JaxLoopTimer, median us"}
  (args.outdir / "tiled_ffi_bench.json").write_text(
      json.dumps({"meta": meta, "records": records}, indent=1))
  header = [f"# Tiled SpMM on the CPU ({rows}x{cols}, float32)", "",
            *(f"- {key}: {value}" for key, value in meta.items() if key != "machine"),
            f"- cpu: {meta['machine']['cpu_model']} ({meta['machine']['cpu_cores']} cores)", ""]
  (args.outdir / "tiled_ffi_bench.md").write_text("\n".join(header + table) + "\n")
  print("\n".join(table))


if __name__ == "__main__":
  main()
