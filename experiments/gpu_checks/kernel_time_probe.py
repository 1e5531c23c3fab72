"""Which profiler sees whose kernels? One JAX op, one torch op and one Sputnik op (when built)
traced by each backend of ``experiments.kernel_time``; prints each trace's device lines and
event counts, then the kernel time of each op by ``kernel_time.measure``.

    python3 -P experiments/gpu_checks/kernel_time_probe.py
"""

from __future__ import annotations

import collections
import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments import kernel_time, profiling, timing  # noqa: E402


def main() -> None:
  import torch
  rng = np.random.default_rng()
  x = jnp.asarray(rng.standard_normal((2048, 2048)), jnp.float32)
  jax_timer = timing.JaxLoopTimer(lambda a: a @ a, [(x,)])
  t = torch.randn(2048, 2048, device="cuda")
  torch_timer = timing.TorchCudaTimer([lambda: t @ t])
  timers = {"jax matmul": jax_timer, "torch matmul": torch_timer}
  try:
    import scipy.sparse
    from experiments.sputnik import binding, smoke
    if binding.missing_reason() is None:
      matrix = scipy.sparse.random(1024, 1024, density=0.1, format="csr", dtype=np.float32,
                                   random_state=0)
      _, csr = smoke.device_csr(matrix)
      dense = torch.randn(1024, 128, device="cuda")
      out = torch.empty(1024, 128, device="cuda")
      timers["sputnik spmm"] = timing.TorchCudaTimer([binding.Spmm(csr, dense, out)])
    else:
      print("sputnik not probed:", binding.missing_reason())
  except Exception as error:  # the probe goes on without Sputnik
    print("sputnik not probed:", type(error).__name__, error)
  for name, timer in timers.items():
    timer.synchronize(timer.launch())

    def run(timer=timer):
      for _ in range(3):
        timer.synchronize(timer.launch())
    print(f"== {name}: jax.profiler lines", flush=True)
    for (plane, line), events in profiling.gpu_trace_lines(run).items():
      print(f"   {plane} | {line}: {len(events)}")
    try:
      names = collections.Counter(n for _, _, n in kernel_time.torch_trace(run))
      print(f"   torch.profiler: {sum(names.values())} activities {dict(names.most_common(3))}")
    except Exception as error:
      print("   torch.profiler failed:", type(error).__name__, error)
    for backend in ("jax-profiler", "torch-profiler"):
      try:
        measured = kernel_time.measure(timer, calls=10, backends=(backend,))
        print(f"   {backend}: {measured}")
      except Exception as error:
        print(f"   {backend}: {type(error).__name__}: {error}")
    print(f"   wall-clock timer: {timer.measure(timing.TimingConfig(repeats=5)).median_us:.1f} us")


if __name__ == "__main__":
  main()
