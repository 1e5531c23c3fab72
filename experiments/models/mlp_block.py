"""An LLM's MLP block with 2:4 or unstructured weights, end to end: dense vs 2:4 on the Pallas
kernels vs 2:4 on the sparse tensor cores vs tiled unstructured weights (issue 8).

The block is Llama-3-8B's SwiGLU MLP in bfloat16: ``down(silu(gate(x)) * up(x))`` with gate and
up 4096 -> 14336 and down 14336 -> 4096, each a ``jsparse.nn.SparseLinear`` (2:4, magnitude)
or an ``nnx.Linear``. Weights are random (time does not depend on their values). Variants:

- ``dense``: three ``nnx.Linear``;
- ``2:4``: ``SparseLinear(format="nm")``, the Pallas N:M kernels (``jsparse.spmm``);
- ``2:4-sparse-cores``: the same layers after ``jsparse.nn.use_sparse_tensor_cores`` (and
  ``tune_sparse_tensor_cores`` per token count): cuSPARSELt where ``jsparse.ops.compressed_nm``
  routes the call, the Pallas kernels elsewhere;
- ``2:4-mma``: the same weights as ``jsparse.MmaNM`` (``MmaLinear``), the mma.sp decoding kernel
  through ``jsparse.ops.matmul_transposed`` (up to 32 tokens; the dense expansion beyond);
- ``tiled-70%`` / ``tiled-90%``: ``SparseLinear(format="tiled")``, magnitude-pruned to that
  sparsity, 16x64 bitmap tiles: on a GPU the CUDA-core gemv kernel at 1-2 tokens where the
  tiles are sparse enough (``jsparse._gpu.tiled_gemv.routes``), the tensor-core tiled
  kernel otherwise up to 32 tokens, the Pallas tiled kernels beyond.

Each (variant, tokens) is timed as one jit-compiled forward pass: ``experiments.kernel_time``
(device busy time of one call, no dispatch) and ``JaxLoopTimer`` (back-to-back passes in a
jitted loop); tokens 1, 16, 32, 64, 128, 1024, 4096 (decoding to prefill).

    python3 -P experiments/models/mlp_block.py OUTDIR [--tokens 1,16,32,64,128,1024,4096]

Writes OUTDIR/mlp_block.jsonl and mlp_block.md (device, versions, date). GPU only for the
sparse-cores variant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import jsparse  # noqa: E402
from experiments import kernel_time  # noqa: E402
from experiments.timing import JaxLoopTimer, TimingConfig  # noqa: E402
from jsparse.nn import SparseLinear, tune_sparse_tensor_cores, use_sparse_tensor_cores  # noqa: E402

HIDDEN, INTERMEDIATE = 4096, 14336
VARIANTS = ("dense", "2:4", "2:4-sparse-cores", "2:4-mma", "tiled-70%", "tiled-90%")


class MmaLinear(nnx.Module):
  """A 2:4 ``SparseLinear``'s weight held as a ``jsparse.MmaNM`` (no bias): x @ W.T."""

  def __init__(self, layer: SparseLinear):
    matrix = jsparse.MmaNM.from_nm(layer.weight.matrix.with_data(layer.weight.values[...]))
    self.values, self.meta = nnx.Variable(matrix.values), nnx.Variable(matrix.meta)
    self.shape, self.dtype = matrix.shape, matrix.dtype

  def __call__(self, x):
    matrix = jsparse.MmaNM(self.values[...], self.meta[...], self.shape, self.dtype,
                           validate=False)  # built by from_nm
    return jsparse.ops.matmul_transposed(x, matrix)


class MLP(nnx.Module):
  """SwiGLU MLP: [..., hidden] -> [..., hidden]."""

  def __init__(self, variant: str, rngs: nnx.Rngs):
    def linear(n_in, n_out):  # 2:4-mma converts the 2:4 layers (build)
      if variant == "dense":
        return nnx.Linear(n_in, n_out, use_bias=False, dtype=jnp.bfloat16,
                          param_dtype=jnp.bfloat16, rngs=rngs)
      if variant.startswith("tiled-"):
        return SparseLinear(n_in, n_out, format="tiled",
                            sparsity=float(variant.removeprefix("tiled-").rstrip("%")) / 100,
                            use_bias=False, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                            rngs=rngs)
      return SparseLinear(n_in, n_out, format="nm", nm=(2, 4), use_bias=False,
                          dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, rngs=rngs)
    self.gate = linear(HIDDEN, INTERMEDIATE)
    self.up = linear(HIDDEN, INTERMEDIATE)
    self.down = linear(INTERMEDIATE, HIDDEN)

  def __call__(self, x):
    return self.down(nnx.silu(self.gate(x)) * self.up(x))


def build(variant: str) -> MLP:
  model = MLP(variant, nnx.Rngs(0))
  if variant.endswith("-sparse-cores"):
    use_sparse_tensor_cores(model)
  if variant == "2:4-mma":
    model.gate, model.up, model.down = (MmaLinear(model.gate), MmaLinear(model.up),
                                        MmaLinear(model.down))
  return model


def measure(model: MLP, tokens: int, variant: str) -> dict:
  tuned = {}
  if variant.endswith("-sparse-cores"):
    tuned = {f"{m}x{k}": alg for (m, k), alg in tune_sparse_tensor_cores(model, tokens).items()}
  graphdef, state = nnx.split(model)
  forward = lambda state, x: nnx.merge(graphdef, state)(x)  # noqa: E731
  x = jax.random.normal(jax.random.key(tokens), (tokens, HIDDEN)).astype(jnp.bfloat16)
  timer = JaxLoopTimer(forward, [(state, x)], unroll=2)
  timer.run_once()
  loop = timer.measure(TimingConfig(repeats=5, min_sample_s=0.02, max_total_s=1.0))
  fields = kernel_time.measure(timer, calls=kernel_time.calls_for(loop.median_us)).record_fields()
  return {"variant": variant, "tokens": tokens, "loop_median_us": loop.median_us,
          "cusparselt_algs": tuned, **fields}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--tokens", default="1,16,32,64,128,1024,4096")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  device = jax.devices()[0]
  meta = {"device": getattr(device, "device_kind", device.platform), "jax": jax.__version__,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
          "block": f"SwiGLU {HIDDEN} -> {INTERMEDIATE} -> {HIDDEN}, bfloat16"}
  records = []
  for variant in args.variants.split(","):
    try:
      model = build(variant)
    except Exception as error:  # noqa: BLE001 - record and go on
      records.append({"variant": variant, "error": f"{type(error).__name__}: {error}"[:300]})
      continue
    for tokens in map(int, args.tokens.split(",")):
      try:
        record = measure(model, tokens, variant)
      except Exception as error:  # noqa: BLE001
        record = {"variant": variant, "tokens": tokens,
                  "error": f"{type(error).__name__}: {error}"[:300]}
      records.append(record)
      print(json.dumps(record), flush=True)
  with (args.outdir / "mlp_block.jsonl").open("w") as out:
    for record in records:
      out.write(json.dumps({**meta, **record}) + "\n")
  dense = {r["tokens"]: r.get("kernel_median_us") for r in records if r["variant"] == "dense"}
  variants = ", ".join(dict.fromkeys(r["variant"] for r in records))
  lines = [f"# MLP block: {variants} ({meta['device']}, {meta['date'][:10]})", "",
           *(f"- {key}: {value}" for key, value in meta.items()), "",
           "| variant | tokens | kernel us | dense / this | loop us |", "|---|---|---|---|---|"]
  for r in records:
    us = r.get("kernel_median_us")
    base = dense.get(r.get("tokens"))
    ratio = f"{base / us:.2f}x" if us and base else "-"
    cell = f"{us:.1f}" if us else r.get("error", "-")[:80]
    loop = f"{r['loop_median_us']:.1f}" if r.get("loop_median_us") else "-"
    lines.append(f"| {r['variant']} | {r.get('tokens', '-')} | {cell} | {ratio} | {loop} |")
  (args.outdir / "mlp_block.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
