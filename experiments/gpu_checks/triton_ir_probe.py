"""Where does a Pallas Triton kernel ask for shared memory? Compiles the Triton-dialect module
that JAX emits for a CSR kernel with the ``triton`` package's own compiler (a GPU machine with
``triton`` installed) and writes its TTGIR (layouts, ``local_alloc``s, ``convert_layout``s) and
the shared memory it needs.

    python3 experiments/gpu_checks/triton_ir_probe.py OUTDIR

Writes OUTDIR/<name>.ttir (as JAX emits it), OUTDIR/<name>.ttgir and OUTDIR/summary.txt (the
shared bytes of each launch and the ops that touch shared memory). The ``triton`` package may be
a different version from the Triton inside jaxlib, so its result is a guide, not the compile XLA
runs; a launch whose module the package cannot parse is reported as such.
"""

from __future__ import annotations

import pathlib
import re
import sys
import traceback

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from pallas_kernels import csr_sddmm, csr_spmm  # noqa: E402

S = jax.ShapeDtypeStruct
LAUNCHES = {
    "spmm-w1": (lambda d, c, o, b: csr_spmm.kernel_fn(
        d, c, o, b, num_rows=4096, natural_order=True,
        config=csr_spmm.SpmmConfig(block_n=64, block_nnz=8, num_warps=1)),
        (S((400000,), jnp.float32), S((400000,), jnp.int32), S((4097,), jnp.int32),
         S((4096, 128), jnp.float32))),
    "sddmm-w1": (lambda c, o, x, y: csr_sddmm.kernel_fn(
        c, o, x, y, num_rows=4096, natural_order=True,
        config=csr_sddmm.SddmmConfig(block_nnz=16, block_d=128, num_warps=1)),
        (S((400000,), jnp.int32), S((4097,), jnp.int32), S((4096, 128), jnp.float32),
         S((4096, 128), jnp.float32))),
    "sddmm-default": (lambda c, o, x, y: csr_sddmm.kernel_fn(
        c, o, x, y, num_rows=4096, natural_order=True),
        (S((400000,), jnp.int32), S((4097,), jnp.int32), S((4096, 128), jnp.float32),
         S((4096, 128), jnp.float32))),
}


def emitted_module(fn, operands) -> str:
  """The Triton-dialect module text JAX emits for ``fn(*operands)`` (lowered, not run)."""
  from jax._src.pallas.triton import pallas_call_registration as registration
  modules = []
  lower = registration.lowering.lower_jaxpr_to_triton_module

  def keep(*args, **kwargs):
    result = lower(*args, **kwargs)
    modules.append(result.module)
    return result

  registration.lowering.lower_jaxpr_to_triton_module = keep
  try:
    jax.jit(fn).trace(*operands).lower(lowering_platforms=("cuda",))
  finally:
    registration.lowering.lower_jaxpr_to_triton_module = lower
  return str(modules[0])


def main() -> None:
  out = pathlib.Path(sys.argv[1])
  out.mkdir(parents=True, exist_ok=True)
  import triton
  from triton.backends.compiler import GPUTarget
  summary = [f"triton {triton.__version__}"]
  for name, (fn, operands) in LAUNCHES.items():
    ttir = emitted_module(fn, operands)
    path = out / f"{name}.ttir"
    path.write_text(ttir)
    try:
      kernel = triton.compile(str(path), target=GPUTarget("cuda", 90, 32))
      ttgir = kernel.asm["ttgir"]
      (out / f"{name}.ttgir").write_text(ttgir)
      touching = [line.strip()[:160] for line in ttgir.splitlines()
                  if re.search(r"local_alloc|local_load|local_store|convert_layout", line)]
      summary.append(f"{name}: shared {kernel.metadata.shared} bytes; "
                     f"{len(touching)} ops touching shared memory or converting layouts")
      summary.extend("  " + line for line in touching[:20])
    except Exception:  # noqa: BLE001 - report and go on
      summary.append(f"{name}: compile failed\n{traceback.format_exc()[-1500:]}")
  (out / "summary.txt").write_text("\n".join(summary) + "\n")
  print("\n".join(summary))


if __name__ == "__main__":
  main()
