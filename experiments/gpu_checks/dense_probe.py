"""Why is one dense float32 matmul slow? Times ``jnp.dot`` at ``Precision.HIGHEST`` (the harness's
dense-fp32 line) and in bfloat16 on the given shapes with the harness's own timers, and prints
what XLA compiled each to (the GEMM custom calls / fusions of the optimized HLO), so runs under
different ``XLA_FLAGS`` can be compared.

    python3 experiments/gpu_checks/dense_probe.py --shapes 2048x512x128 512x2048x128
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import timing  # noqa: E402

GEMM_PATTERN = re.compile(r'(custom_call_target="[^"]+"|"kind":"__triton_gemm"|'
                          r'__cublas\w*|triton_gemm\w*|"fusion_backend_config":\{"kind":"[^"]+")')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--shapes", nargs="+", required=True, help="MxKxN")
  args = parser.parse_args()
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} on {jax.devices()[0].device_kind}")
  config = timing.TimingConfig(repeats=7, min_repeats=5, min_sample_s=0.005, max_total_s=1.0)
  rng = np.random.default_rng()
  for spec in args.shapes:
    m, k, n = (int(x) for x in spec.split("x"))
    for dtype, precision in ((jnp.float32, jax.lax.Precision.HIGHEST),
                             (jnp.bfloat16, jax.lax.Precision.DEFAULT)):
      a = jnp.asarray(rng.standard_normal((m, k)), dtype)
      b = jnp.asarray(rng.standard_normal((k, n)), dtype)
      fn = lambda a, b, precision=precision: jnp.dot(a, b, precision=precision)  # noqa: E731
      text = jax.jit(fn).lower(a, b).compile().as_text()
      kernels = sorted(set(GEMM_PATTERN.findall(text)))
      looped = timing.JaxLoopTimer(fn, [(a, b)]).measure(config)
      per_call = timing.JaxCallTimer(fn, (a, b)).measure(config)
      flops = 2 * m * k * n
      print(f"{spec} {jnp.dtype(dtype).name:8s} loop {looped.median_us:8.1f} us "
            f"({flops / looped.median_us / 1e6:6.1f} TFLOP/s)  per-call {per_call.median_us:8.1f} us"
            f"  {kernels}", flush=True)


if __name__ == "__main__":
  main()
