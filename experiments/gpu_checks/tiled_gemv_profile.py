"""One CUDA-core tiled launch (``jsparse._gpu.tiled_gemv.gemv``, its default config or a given
one) run a few times, for Nsight Compute:
``ncu ... python3 -P experiments/gpu_checks/tiled_gemv_profile.py M K N SPARSITY [SPEC]``
(SPEC as ``tiled_gemv_probe.py``'s ``--configs``: ``parse_config``'s specs).

bfloat16, uniform random pattern, 16x64 tiles; the output is checked against a float32 product
once."""

from __future__ import annotations

import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

from experiments.gpu_checks.tiled_gemv_probe import parse_config  # noqa: E402
from experiments.gpu_checks.tiled_profile import run_checked  # noqa: E402
from jsparse._gpu import tiled_gemv  # noqa: E402


def main(argv: list[str]) -> None:
  rows, cols, n = (int(value) for value in argv[:3])
  config = parse_config(argv[4] if len(argv) > 4 else "default")(n, rows, cols)
  err = run_checked(rows, cols, n, float(argv[3]),
                    lambda d, b, o, v, shape: tiled_gemv.gemv(d, b, o, v, shape=shape,
                                                              config=config))
  print(f"{config}: rel err {err:.2e}")


if __name__ == "__main__":
  main(sys.argv[1:])
