"""A small byte-level causal LM with learned block-sparse attention masks, trained on the CPU.

Corpus: the Python standard library's own source (bytes), which every machine with Python has.
Model: byte embeddings + learned positions, pre-norm ``SparseTransformerBlock``s with
``pattern="learned"`` (a ``LearnedBlockMask`` gate per layer), causal. Training runs dense
attention (density 1.0) and trains the gates on their distillation loss beside the LM loss; the
evaluation then sets every gate's density to 100/50/25/12.5% of the causally visible blocks
(hard top-k masks, the diagonal block always kept) and reports the validation loss, against a
fixed local mask (the most recent blocks) with the same per-row budget.

  python -P experiments/models/small_lm.py OUTDIR [--steps N] [--seq 256] [--batch 16]
"""

from __future__ import annotations

import argparse
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
import jsparse  # noqa: E402
from jsparse.nn import SparseTransformerBlock  # noqa: E402
from jsparse.nn.learned_mask import block_budget  # noqa: E402

DENSITIES = (1.0, 0.5, 0.25, 0.125)


def corpus(max_bytes: int) -> np.ndarray:
  """uint8 bytes of the standard library's .py files, in sorted path order."""
  stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
  chunks, total = [], 0
  for path in sorted(stdlib.glob("*.py")):
    data = path.read_bytes()
    chunks.append(data)
    total += len(data)
    if total >= max_bytes:
      break
  return np.frombuffer(b"".join(chunks)[:max_bytes], np.uint8)


class ByteLM(nnx.Module):
  def __init__(self, *, seq_len: int, width: int, layers: int, heads: int, kv_heads: int,
               block: int, rngs: nnx.Rngs):
    self.tokens = nnx.Embed(256, width, rngs=rngs)
    self.positions = nnx.Embed(seq_len, width, rngs=rngs)
    self.blocks = nnx.List([
        SparseTransformerBlock(width, heads, 4 * width, num_kv_heads=kv_heads, causal=True,
                               pattern="learned", block_size=(block, block), density=1.0,
                               num_local_blocks=1, gate_dim=16, rngs=rngs)
        for _ in range(layers)])
    self.norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, 256, rngs=rngs)

  def __call__(self, tokens, masks=None):
    x = self.tokens(tokens) + self.positions(jnp.arange(tokens.shape[1]))[None]
    for index, block in enumerate(self.blocks):
      x = block(x, mask=None if masks is None else masks[index])
    return self.head(self.norm(x))


def set_density(model: ByteLM, density: float) -> None:
  for block in model.blocks:
    block.attention.gate.density = density


def batches(data: np.ndarray, rng, batch: int, seq: int):
  starts = rng.integers(0, len(data) - seq - 1, size=batch)
  window = np.stack([data[s:s + seq + 1] for s in starts]).astype(np.int32)
  return window[:, :-1], window[:, 1:]


def cross_entropy(logits, targets):
  return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1))


def local_masks(model: ByteLM, seq: int, density: float, batch: int):
  """Per layer, the fixed mask keeping each query block's most recent ``budget`` blocks."""
  gate = model.blocks[0].attention.gate
  visible, forced, budget = block_budget(seq, seq, gate.block_size, density, True, 1)
  nqb = visible.shape[0]
  kept = np.zeros_like(visible)
  for i in range(nqb):
    kept[i, i - budget[i] + 1:i + 1] = True
  mask = jsparse.BlockMask.from_dense(kept[None], block_size=gate.block_size)
  return [mask] * len(model.blocks)


def evaluate(model, data, *, seq, batch, count, seed=1):
  """Mean validation loss over ``count`` fixed batches, and the kept fraction of visible blocks."""
  rng = np.random.default_rng(seed)
  forward = nnx.jit(lambda m, x: m(x))
  losses = [float(cross_entropy(forward(model, x), y))
            for x, y in (batches(data, rng, batch, seq) for _ in range(count))]
  return float(np.mean(losses))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("outdir", type=pathlib.Path)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seq", type=int, default=256)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--layers", type=int, default=2)
  parser.add_argument("--block", type=int, default=16)
  parser.add_argument("--corpus-bytes", type=int, default=4_000_000)
  parser.add_argument("--eval-batches", type=int, default=8)
  args = parser.parse_args()
  import optax
  args.outdir.mkdir(parents=True, exist_ok=True)
  data = corpus(args.corpus_bytes)
  split = int(len(data) * 0.95)
  train, val = data[:split], data[split:]
  model = ByteLM(seq_len=args.seq, width=args.width, layers=args.layers, heads=4, kv_heads=2,
                 block=args.block, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.adamw(3e-3, weight_decay=0.01), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, y):
    def loss_fn(model):
      logits, sown = nnx.capture(lambda m: m(x), nnx.Intermediate)(model)
      gate_loss = sum(jax.tree.leaves(sown))
      lm_loss = cross_entropy(logits, y)
      return lm_loss + gate_loss, (lm_loss, gate_loss)
    (_, (lm_loss, gate_loss)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return lm_loss, gate_loss

  rng = np.random.default_rng(0)
  history, start = [], time.perf_counter()
  for step in range(args.steps):
    lm_loss, gate_loss = train_step(model, optimizer, *batches(train, rng, args.batch, args.seq))
    if step % 25 == 0 or step == args.steps - 1:
      history.append({"step": step, "lm_loss": float(lm_loss), "gate_loss": float(gate_loss),
                      "elapsed_s": time.perf_counter() - start})
      print(history[-1], flush=True)
  train_s = time.perf_counter() - start

  model.eval()  # gates stop sowing their loss
  results = []
  gate = model.blocks[0].attention.gate
  for density in DENSITIES:
    visible, _, budget = block_budget(args.seq, args.seq, gate.block_size, density, True, 1)
    kept_fraction = float(budget.sum() / visible.sum())
    set_density(model, density)
    learned = evaluate(model, val, seq=args.seq, batch=args.batch, count=args.eval_batches)
    masks = local_masks(model, args.seq, density, args.batch)
    forward = nnx.jit(lambda m, x, masks: m(x, masks))
    erng = np.random.default_rng(1)
    local = float(np.mean([float(cross_entropy(forward(model, x, masks), y)) for x, y in
                           (batches(val, erng, args.batch, args.seq)
                            for _ in range(args.eval_batches))]))
    results.append({"density_target": density, "kept_fraction_of_visible_blocks": kept_fraction,
                    "attention_sparsity": 1 - kept_fraction, "val_loss_learned": learned,
                    "val_loss_local": local,
                    "val_bits_per_byte_learned": learned / math.log(2)})
    print(results[-1], flush=True)

  draw_masks(model, val, args, args.outdir)
  device = jax.devices()[0]
  record = {"experiment": "small_lm", "config": vars(args) | {"outdir": str(args.outdir)},
            "corpus": f"Python {sys.version.split()[0]} stdlib *.py bytes, {len(data)} bytes, "
                      f"last 5% validation",
            "device": getattr(device, "device_kind", device.platform), "train_s": train_s,
            "versions": {"jax": jax.__version__, "flax": __import__("flax").__version__},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "history": history, "results": results}
  (args.outdir / "small_lm.json").write_text(json.dumps(record, indent=1))


def draw_masks(model, val, args, outdir: pathlib.Path) -> None:
  """Hard learned masks of one validation sequence: layers x heads, at 25% and 12.5%."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  x, _ = batches(val, np.random.default_rng(2), 1, args.seq)
  for density in (0.25, 0.125):
    set_density(model, density)
    fig, axes = plt.subplots(len(model.blocks), 4, figsize=(10, 2.6 * len(model.blocks)),
                             squeeze=False)
    h = model.tokens(jnp.asarray(x)) + model.positions(jnp.arange(args.seq))[None]
    for layer, block in enumerate(model.blocks):
      attention = block.attention
      normed = block.attention_norm(h)
      q = attention.query(normed).reshape(1, args.seq, attention.num_heads, attention.head_dim)
      k = attention.key(normed).reshape(1, args.seq, attention.num_kv_heads, attention.head_dim)
      masks = np.asarray(attention.gate(q, k))[0]
      for head in range(4):
        axes[layer, head].imshow(masks[head], cmap="Greys", interpolation="nearest")
        axes[layer, head].set_title(f"layer {layer} head {head}", fontsize=8)
        axes[layer, head].set_xticks([])
        axes[layer, head].set_yticks([])
      h = block(h)
    fig.suptitle(f"learned block masks (black = kept), density {density:.3g} of visible blocks, "
                 f"block {args.block}, sequence {args.seq}", fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / f"small_lm_masks_density{int(density * 1000)}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
  main()
