"""Markdown tables from the committed results (experiments/models/results/): MiniLM pruning
quality and latency, the small LM's loss vs attention density.

  python -P experiments/models/tables.py [RESULTS_DIR]
"""

from __future__ import annotations

import json
import pathlib
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _records(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def minilm_quality(records: list[dict]) -> str:
  rows = ["| variant | sparsity of the linears | fine-tune steps | cosine to dense (mean / min) | "
          "pair Spearman | paraphrase top-1 |", "|---|---|---|---|---|---|"]
  for r in records:
    if r["kind"] == "quality":
      rows.append(f"| {r['variant']} | {r['sparsity']:.3f} | {r['finetune_steps']} | "
                  f"{r['cosine_to_dense']:.4f} / {r['min_cosine_to_dense']:.4f} | "
                  f"{r['pair_spearman']:.3f} | {r['paraphrase_top1']:.2f} |")
  return "\n".join(rows)


def minilm_latency(records: list[dict]) -> str:
  # Older records: best of a few jitted calls (min_s); newer: JaxLoopTimer p10 and median, plus
  # the per-call time with dispatch (call_median_s).
  rows = ["| device | dtype | variant | batch x seq | median (s) | p10 or min (s) | "
          "per call, with dispatch (s) | sequences/s | tokens/s |",
          "|---|---|---|---|---|---|---|---|---|"]
  for r in records:
    if r["kind"] == "latency":
      fastest = r.get("p10_s", r.get("min_s"))
      call = f"{r['call_median_s']:.4g}" if "call_median_s" in r else "-"
      rows.append(f"| {r['device']} | {r.get('dtype', 'float32')} | {r['variant']} | "
                  f"{r['shape']} | {r['median_s']:.4g} | {fastest:.4g} | {call} | "
                  f"{r['sequences_per_s']:.4g} | {r['tokens_per_s']:.4g} |")
  errors = [f"- {r['variant']}: {r['error']}" for r in records if r["kind"] == "error"]
  return "\n".join(rows + errors)


def small_lm(record: dict) -> str:
  rows = ["| target density | kept fraction of visible blocks | attention sparsity | "
          "val loss, learned mask (nats/byte) | val loss, local mask of the same budget |",
          "|---|---|---|---|---|"]
  for r in record["results"]:
    rows.append(f"| {r['density_target']:.3g} | {r['kept_fraction_of_visible_blocks']:.3f} | "
                f"{r['attention_sparsity']:.3f} | {r['val_loss_learned']:.4f} | "
                f"{r['val_loss_local']:.4f} |")
  return "\n".join(rows)


def activations(records: list[dict]) -> str:
  profile = [r for r in records if r["kind"] == "profile"]
  thresholds = list(profile[0]["fraction_below"]) if profile else []
  rows = ["| MLP activation | " + " | ".join(f"fraction |a| <= {t}" for t in thresholds) + " |",
          "|---|" + "---|" * len(thresholds)]
  rows += [f"| {r['site']} | " + " | ".join(f"{r['fraction_below'][t]:.4f}" for t in thresholds)
           + " |" for r in profile]
  rows += ["", "| zero fraction | dense [tokens, 1536] @ [1536, 384] (s) | CSR activations (s) |",
           "|---|---|---|"]
  rows += [f"| {r['zero_fraction']:.3f} | {r['dense_s']:.3g} | {r['sparse_csr_s']:.3g} |"
           for r in records if r["kind"] == "matmul"]
  return "\n".join(rows)


def main(results: pathlib.Path) -> None:
  for name in ("cpu", "cpu_latency", "gpu"):
    path = results / name / "minilm_pruning.jsonl"
    if path.exists():
      records = _records(path)
      print(f"### MiniLM, {name} run ({records[0]['device']}, {records[0]['date'][:10]}, "
            f"jax {records[0]['versions']['jax']})\n")
      if any(r["kind"] == "quality" for r in records):
        print(minilm_quality(records) + "\n")
      print(minilm_latency(records) + "\n")
  for path in sorted(results.glob("lm*/small_lm.json")):
    record = json.loads(path.read_text())
    config = record["config"]
    print(f"### Small LM, sequence {config['seq']}, block {config['block']} ({record['device']}, "
          f"{record['date'][:10]}, {config['steps']} steps in {record['train_s']:.0f} s)\n")
    print(small_lm(record) + "\n")
  path = results / "activations" / "activation_sparsity.jsonl"
  if path.exists():
    records = _records(path)
    print(f"### Activation sparsity ({records[0]['device']}, {records[0]['date'][:10]}, "
          f"{records[-1].get('tokens')} tokens in the matmul)\n")
    print(activations(records) + "\n")


if __name__ == "__main__":
  main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS)
