"""Pruned MiniLM: quality (embedding cosine to dense, pair-similarity Spearman, paraphrase
retrieval) with and without a short distillation fine-tune, and jit-compiled inference latency.

  python -P experiments/models/minilm_pruning.py OUTDIR [--finetune-steps N] [--latency SHAPES]
      [--variants a,b] [--no-quality]

Writes OUTDIR/minilm_pruning.jsonl (one JSON object per measurement, with device, versions,
date) and prints a table. Every variant prunes all 36 encoder linears (embeddings stay dense).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import math
import pathlib
import sys
import sysconfig
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments.models import minilm  # noqa: E402
from experiments.models.sentences import PAIRS, SENTENCES  # noqa: E402
from jsparse.pruning.modules import apply_masks, compute_masks, prune  # noqa: E402

VARIANTS = {
    "dense": None,
    "magnitude-50%": dict(method="magnitude", sparsity=0.5),
    "magnitude-70%": dict(method="magnitude", sparsity=0.7),
    "magnitude-90%": dict(method="magnitude", sparsity=0.9),
    "2:4": dict(method="nm", nm=(2, 4)),
    # The same weights compressed for the sparse tensor cores (cuSPARSELt; GPU, bf16/f16 only):
    # calls of >= jsparse.cusparselt.ROUTE_MIN_N tokens run there, shorter ones as "2:4".
    "2:4-sparse-cores": dict(method="nm", nm=(2, 4)),
    "block16x16-50%": dict(method="block", sparsity=0.5, block_shape=(16, 16)),
    # 64x64 blocks: the Mosaic GPU BSR kernel's shape on Hopper (bm a multiple of 64).
    "block64x64-50%": dict(method="block", sparsity=0.5, block_shape=(64, 64)),
    "block64x64-80%": dict(method="block", sparsity=0.8, block_shape=(64, 64)),
    # Unstructured magnitude pruning stored as bitmap tiles ("load as sparse, compute as dense").
    "tiled-50%": dict(method="magnitude", sparsity=0.5, format="tiled"),
    "tiled-70%": dict(method="magnitude", sparsity=0.7, format="tiled"),
    "tiled-90%": dict(method="magnitude", sparsity=0.9, format="tiled"),
}
SHAPES = {"1x128": (1, 128), "32x128": (32, 128), "8x512": (8, 512)}


def environment() -> dict:
  device = jax.devices()[0]
  versions = {}
  for name in ("jax", "jaxlib", "flax", "numpy"):
    module = __import__(name)
    versions[name] = getattr(module, "__version__", "-")
  return {"device": getattr(device, "device_kind", device.platform), "platform": device.platform,
          "versions": versions, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def build(variant: str, impl: str = "auto", dtype=None):
  """The pretrained model pruned as ``variant``; ``dtype`` (e.g. bfloat16): the computation dtype
  of the encoder (the embeddings' float32 output is cast to it), and every floating parameter
  cast to it after pruning (the masks see the float32 weights). Without the first, the layers
  ran in float32 (H100: the 2:4 model took 12 ms, its float32 N:M kernel being slow, where its
  six blocks alone took 0.97 ms in bfloat16)."""
  model = minilm.load(impl=impl, dtype=dtype)
  report = None
  if VARIANTS[variant] is not None:
    report = prune(model, impl=impl, **VARIANTS[variant])
  if dtype is not None:
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, state))
  if variant.endswith("-sparse-cores"):
    from jsparse.nn import use_sparse_tensor_cores
    use_sparse_tensor_cores(model)
  return model, report


def spearman(x: np.ndarray, y: np.ndarray) -> float:
  rank = lambda a: np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
  # Average ranks of ties in the labels.
  ry = np.array([np.mean(rank(y)[y == v]) for v in y])
  return float(np.corrcoef(rank(x), ry)[0, 1])


def quality(model, dense_embeddings: np.ndarray, tok) -> dict:
  embeddings = minilm.embed(model, SENTENCES, tok)
  index = {s: i for i, s in enumerate(SENTENCES)}
  a = embeddings[[index[p[0]] for p in PAIRS]]
  b = embeddings[[index[p[1]] for p in PAIRS]]
  labels = np.array([p[2] for p in PAIRS], float)
  cosines = np.sum(a * b, axis=1)
  paraphrases = np.flatnonzero(labels >= 4)
  candidates = b[paraphrases]
  hits = np.argmax(a[paraphrases] @ candidates.T, axis=1) == np.arange(len(paraphrases))
  return {"cosine_to_dense": float(np.mean(np.sum(embeddings * dense_embeddings, axis=1))),
          "min_cosine_to_dense": float(np.min(np.sum(embeddings * dense_embeddings, axis=1))),
          "pair_spearman": spearman(cosines, labels),
          "paraphrase_top1": float(hits.mean())}


def distillation_sentences(count: int, seed: int = 0) -> list[str]:
  """First lines of docstrings from Python's standard library: text every machine has."""
  stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  lines = []
  for path in sorted(stdlib.glob("*.py")):
    try:
      tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
      continue
    for node in ast.walk(tree):
      if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)):
        doc = ast.get_docstring(node)
        if doc and 20 <= len(doc.split("\n")[0]) <= 200:
          lines.append(doc.split("\n")[0])
  rng = np.random.default_rng(seed)
  chosen = rng.choice(len(lines), size=min(count, len(lines)), replace=False)
  return [lines[i] for i in chosen if lines[i] not in SENTENCES]


def finetune(model, masks, teacher, sentences: list[str], tok, *, steps: int, batch: int = 16,
             learning_rate: float = 3e-4, seed: int = 0) -> list[float]:
  """Distills the dense teacher's embeddings into the masked dense model (1 - cosine, Adam).

  The pruned weights are held at zero by re-applying ``masks`` after every update, so the kept
  weights follow exactly the updates that training the sparse layers' values would give (their
  gradients are the same); dense matmuls make it fast on the CPU. ``prune(masks=...)`` then
  stores the result sparse.
  """
  import optax
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
  rng = np.random.default_rng(seed)

  @nnx.jit
  def step(model, optimizer, ids, mask, target):
    def loss_fn(model):
      return jnp.mean(1.0 - jnp.sum(model(ids, mask) * target, axis=-1))
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    apply_masks(model, masks)
    return loss

  losses = []
  for _ in range(steps):
    chosen = [sentences[i] for i in rng.choice(len(sentences), size=batch, replace=False)]
    ids, mask = minilm.tokenize(chosen, tok)
    ids, mask = _pad_to(ids, 48), _pad_to(mask, 48)   # one shape, one compile
    target = nnx.jit(lambda m, i, a: m(i, a))(teacher, ids, mask)
    losses.append(float(step(model, optimizer, ids, mask, target)))
  return losses


def _pad_to(array: np.ndarray, length: int) -> np.ndarray:
  array = array[:, :length]
  return np.pad(array, ((0, 0), (0, length - array.shape[1])))


def latency(model, shape, *, repeats: int = 3) -> dict:
  """Forward time of ``model`` on random token ids [batch, seq], compiled once.

  ``median_s`` / ``min_s``: ``experiments.timing.JaxLoopTimer`` (the benchmark suite's method):
  the forward pass runs back to back inside one jitted loop, so Python dispatch and host syncs
  are not counted (on a GPU: device time; the per-call ``nnx.jit`` of the model pytree cost
  ~10 ms of Python a call on the H100, more than the model). ``call_median_s``: one jitted call
  of the split model, blocking, dispatch included (what a Python caller sees).
  """
  from experiments.timing import JaxCallTimer, JaxLoopTimer, TimingConfig
  batch, seq = shape
  ids = jnp.asarray(np.random.default_rng(0).integers(1000, 30000, size=(batch, seq)), jnp.int32)
  graphdef, state = nnx.split(model)
  forward = lambda state, ids: nnx.merge(graphdef, state)(ids)
  start = time.perf_counter()
  loop = JaxLoopTimer(forward, [(state, ids)], unroll=2)
  loop.run_once()
  compile_s = time.perf_counter() - start
  config = TimingConfig(repeats=max(repeats, 3), min_sample_s=0.05, max_total_s=2.0)
  measured = loop.measure(config)
  call = JaxCallTimer(forward, (state, ids))
  call.run_once()
  per_call = call.measure(config)
  return {"shape": f"{batch}x{seq}", "median_s": measured.median_us * 1e-6,
          "p10_s": measured.p10_us * 1e-6, "p90_s": measured.p90_us * 1e-6, "method": measured.method, "inner": measured.inner,
          "call_median_s": per_call.median_us * 1e-6, "first_call_s": compile_s,
          "repeats": measured.repeats, "sequences_per_s": batch / (measured.median_us * 1e-6),
          "tokens_per_s": batch * seq / (measured.median_us * 1e-6)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--variants", default=",".join(
      name for name in VARIANTS if not name.endswith("-sparse-cores")),  # GPU-only
      help="comma-separated, of: " + ", ".join(VARIANTS))
  parser.add_argument("--finetune-steps", type=int, default=0)
  parser.add_argument("--finetune-variants", default="")
  parser.add_argument("--latency", default="", help="comma-separated shapes, e.g. 1x128,32x128")
  parser.add_argument("--latency-variants", default="", help="default: all --variants")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--no-quality", action="store_true")
  parser.add_argument("--impl", default="auto")
  parser.add_argument("--dtype", default=None, help="cast the parameters, e.g. bfloat16")
  args = parser.parse_args()
  args.outdir.mkdir(parents=True, exist_ok=True)
  out = args.outdir / "minilm_pruning.jsonl"
  env = environment()
  tok = minilm.tokenizer()
  teacher = minilm.load()
  dense_embeddings = minilm.embed(teacher, SENTENCES, tok)
  distill = distillation_sentences(2000) if args.finetune_steps else []
  latency_variants = (args.latency_variants or args.variants).split(",")

  def emit(record):
    record = {**env, "model": "all-MiniLM-L6-v2", "impl": args.impl, **record}
    with out.open("a") as f:
      f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("versions",)}), flush=True)

  for variant in args.variants.split(","):
    try:
      model, report = build(variant, args.impl, args.dtype)
      info = {"variant": variant, "sparsity": report.total_sparsity if report else 0.0,
              "dtype": args.dtype or "float32"}
      if not args.no_quality:
        emit({**info, "kind": "quality", "finetune_steps": 0,
              **quality(model, dense_embeddings, tok)})
      for name in args.latency.split(",") if args.latency else []:
        if variant in latency_variants:
          tuned = {}
          if variant.endswith("-sparse-cores"):  # cuSPARSELt's fastest algorithm per layer shape
            from jsparse.nn import tune_sparse_tensor_cores
            tuned = {"cusparselt_algs": {f"{m}x{k}": alg for (m, k), alg in
                                         tune_sparse_tensor_cores(model, math.prod(SHAPES[name])
                                                                  ).items()}}
          emit({**info, "kind": "latency", **tuned,
                **latency(model, SHAPES[name], repeats=args.repeats)})
      if args.finetune_steps and variant in args.finetune_variants.split(","):
        start = time.perf_counter()
        student = minilm.load(impl=args.impl)
        masks, _ = compute_masks(student, **VARIANTS[variant])
        apply_masks(student, masks)
        losses = finetune(student, masks, teacher, distill, tok, steps=args.finetune_steps)
        prune(student, impl=args.impl, masks=masks, **{k: v for k, v in VARIANTS[variant].items()
                                                      if k not in ("sparsity",)})
        model = student
        emit({**info, "kind": "quality", "finetune_steps": args.finetune_steps,
              "finetune_s": time.perf_counter() - start, "finetune_loss_first_last":
              [losses[0], losses[-1]], **quality(model, dense_embeddings, tok)})
    except Exception as error:  # one failing case must not stop the batch
      emit({"variant": variant, "kind": "error", "error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
  main()
