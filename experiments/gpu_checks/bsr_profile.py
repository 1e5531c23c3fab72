"""One BSR SpMM launch (or the dense product of the same shape) run a few times, for Nsight
Compute: ``ncu ... python3 -P experiments/gpu_checks/bsr_profile.py LINE M K BM BK N DENSITY``.

LINE: ``mosaic`` (``bsr_spmm_mgpu.kernel_fn``, its default config for the mask) or ``dense``
(``jnp.dot`` of a dense bf16 A of the same shape). bfloat16, a random block mask as
``bsr_mgpu_bench.py``'s; each output is checked against a float32 product once."""

from __future__ import annotations

import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks.bsr_masks import block_mask, bsr_operands  # noqa: E402
from pallas_kernels import bsr_spmm_mgpu  # noqa: E402

CALLS = 4


def main(argv: list[str]) -> None:
  line, *numbers = argv
  rows, cols, bm, bk, num_n = (int(value) for value in numbers[:5])
  density = float(numbers[5])
  mask = block_mask(np.random.default_rng(0), (rows, cols), (bm, bk), density)
  data, col_indices, row_offsets, dense_a = bsr_operands(jax.random.key(1), mask, (bm, bk),
                                                         int(mask.sum()))
  b = jax.random.normal(jax.random.key(2), (cols, num_n), jnp.bfloat16)
  if line == "dense":
    fn, operands = jax.jit(jnp.dot), (dense_a, b)
  elif line == "mosaic":
    config = bsr_spmm_mgpu.default_config(block_shape=(bm, bk), num_rows=rows, num_n=num_n,
                                          blocks_per_row=mask.sum() / mask.shape[0])
    print(config, flush=True)
    fn = jax.jit(lambda *args: bsr_spmm_mgpu.kernel_fn(*args, shape=(rows, cols), config=config))
    operands = (data, col_indices, row_offsets, b)
  else:
    raise SystemExit(f"LINE must be mosaic or dense, got {line!r}")
  expected = jnp.dot(dense_a, b, preferred_element_type=jnp.float32)
  out = fn(*operands)
  error = float(jnp.abs(out.astype(jnp.float32) - expected).max() / jnp.abs(expected).max())
  print(f"rel err {error:.2e}", flush=True)
  for _ in range(CALLS):
    out = fn(*operands)
  out.block_until_ready()


if __name__ == "__main__":
  main(sys.argv[1:])
