"""One CUDA-core tiled launch (``jsparse._gpu.tiled_gemv.gemv``, its default config or a given
one) run a few times, for Nsight Compute:
``ncu ... python3 -P experiments/gpu_checks/tiled_gemv_profile.py M K N SPARSITY [SPEC]``
(SPEC as ``tiled_gemv_probe.py``'s ``--configs``: m_tiles-warps-k_splits-prefetch[-h]).

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
from experiments.gpu_checks.tiled_gemv_probe import parse_config  # noqa: E402
from jsparse._gpu import tiled_gemv  # noqa: E402

CALLS = 4


def main(argv: list[str]) -> None:
  rows, cols, n = (int(value) for value in argv[:3])
  sparsity = float(argv[3])
  config = parse_config(argv[4] if len(argv) > 4 else "default")(n, rows, cols)
  rng = np.random.default_rng(0)
  w = rng.standard_normal((rows, cols)).astype(np.float32) * (rng.random((rows, cols)) > sparsity)
  matrix = jsparse.Tiled.fromdense(jnp.asarray(w, jnp.bfloat16), tile_shape=(16, 64))
  x = jnp.asarray(rng.standard_normal((cols, n)), jnp.bfloat16)
  fn = jax.jit(lambda d, b, o, v: tiled_gemv.gemv(d, b, o, v, shape=(rows, cols), config=config))
  for _ in range(CALLS):
    out = jax.block_until_ready(fn(matrix.data, matrix.bitmaps, matrix.row_offsets, x))
  expected = np.asarray(matrix.todense(), np.float32) @ np.asarray(x, np.float32)
  err = np.abs(np.asarray(out, np.float32) - expected).max() / np.abs(expected).max()
  print(f"{config}: rel err {err:.2e}")


if __name__ == "__main__":
  main(sys.argv[1:])
