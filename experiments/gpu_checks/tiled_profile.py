"""One CUDA tiled-kernel launch (``jsparse._gpu.sparse_mma.tiled_matmul``, its default config or
a given one) run a few times, for Nsight Compute:
``ncu ... python3 -P experiments/gpu_checks/tiled_profile.py M K N SPARSITY [M_TILES WARPS STAGES]``.

bfloat16, uniform random pattern, 16x64 tiles; the output is checked against a float32 product
once."""

from __future__ import annotations

import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jsparse  # noqa: E402
from jsparse._gpu import sparse_mma  # noqa: E402

CALLS = 4


def run_checked(rows: int, cols: int, n: int, sparsity: float, product) -> float:
  """Runs ``product(data, bitmaps, row_offsets, x, shape)`` jitted ``CALLS`` times on a random
  bfloat16 Tiled [rows, cols] matrix at ``sparsity`` and x [cols, n]; returns the last output's
  error relative to a float32 product."""
  rng = np.random.default_rng(0)
  w = rng.standard_normal((rows, cols)).astype(np.float32) * (rng.random((rows, cols)) > sparsity)
  matrix = jsparse.Tiled.fromdense(jnp.asarray(w, jnp.bfloat16), tile_shape=(16, 64))
  x = jnp.asarray(rng.standard_normal((cols, n)), jnp.bfloat16)
  fn = jax.jit(lambda d, b, o, v: product(d, b, o, v, (rows, cols)))
  for _ in range(CALLS):
    out = jax.block_until_ready(fn(matrix.data, matrix.bitmaps, matrix.row_offsets, x))
  expected = np.asarray(matrix.todense(), np.float32) @ np.asarray(x, np.float32)
  return float(np.abs(np.asarray(out, np.float32) - expected).max() / np.abs(expected).max())


def main(argv: list[str]) -> None:
  rows, cols, n = (int(value) for value in argv[:3])
  config = sparse_mma.TiledMmaConfig(*(int(v) for v in argv[4:7])) if len(argv) > 4 else None
  err = run_checked(rows, cols, n, float(argv[3]),
                    lambda d, b, o, v, shape: sparse_mma.tiled_matmul(d, b, o, v, shape=shape,
                                                                      config=config))
  print(f"rel err {err:.2e}")


if __name__ == "__main__":
  main(sys.argv[1:])
