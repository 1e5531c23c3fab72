"""The launch-config sweep of the block-sparse attention kernel (issue 9), as data and pure
functions: which configs attention_bench.py times, which win, and the ``ConfigTable`` they make.

Variants per head dim (at most 16): ``block_q``, ``block_k`` in {64, 128}, ``num_warps`` in {4, 8},
``num_stages`` in {2, 3, 4}, pruned where round 2 or the hardware rules them out: 64-row query
tiles only with 4 warps (8 warps would split a 64-row wgmma tile along the keys); at head dim 128
no 128 x 128 tiles with 4 stages (K and V tiles alone need 4 x 64 KB of the 227 KB of shared
memory) and 8 warps only with 128-row tiles. DEFAULT_TABLE's configs are among them, so the sweep
also times what the library runs today.

Causal only, ``CAUSAL_VARIANTS``: the likeliest winners with their programs launched over groups
of 8 and of all 64 (batch, head) pairs (``AttentionConfig.head_group``: the longest causal tiles of
more heads first, a shorter tail; 1, each head in turn, keeps fewer heads' K/V in L2).

Regimes: ``dense`` (every block kept), ``sparse`` (the bench's density-0.1 mask: 6 of 64 blocks
per query block) and ``causal``; the winner of each per head dim becomes the table's
``prefill_*``, ``sparse_*`` and ``causal_*`` entry (the last two only when they beat the dense
winner on their own regime by more than ``MARGIN``, so the table stays small and noise does not
pick entries).
"""

from __future__ import annotations

import dataclasses
import itertools

from pallas_kernels import block_sparse_attention as bsa

REGIMES = ("dense", "sparse", "causal")
MARGIN = 0.02  # a specialised entry must be this much faster than the dense winner


def _configs(tiles, warps, stages):
  return [bsa.AttentionConfig(block_q=bq, block_k=bk, num_warps=w, num_stages=s)
          for (bq, bk), w, s in itertools.product(tiles, warps, stages)]


VARIANTS = {
    64: tuple(_configs([(128, 128), (128, 64), (64, 64), (64, 128)], [4], [2, 3, 4])
              + _configs([(128, 128)], [8], [2, 3, 4]) + _configs([(128, 64)], [8], [3])),
    128: tuple(_configs([(128, 128)], [8], [2, 3]) + _configs([(128, 64)], [8, 4], [2, 3, 4])
               + _configs([(64, 64)], [4], [2, 3, 4]) + _configs([(64, 128), (128, 128)], [4],
                                                                 [2, 3])),
}


CAUSAL_VARIANTS = {
    head_dim: tuple(dataclasses.replace(config, head_group=group) for config in configs
                    for group in (8, 64))
    for head_dim, configs in (
        (64, _configs([(128, 128), (128, 64)], [4], [3])),
        (128, _configs([(128, 128), (128, 64)], [8], [3])))}


def config_name(config: bsa.AttentionConfig) -> str:
  return (f"{config.block_q}x{config.block_k} w{config.num_warps} s{config.num_stages}"
          + (f" splits{config.num_splits}" if config.num_splits > 1 else "")
          + (f" g{config.head_group}" if config.head_group > 1 else ""))


def winners(times: dict) -> dict:
  """``{(head_dim, regime): (config, us)}``, the fastest config of each from ``times``
  ``{(head_dim, regime, config): us}`` (failed variants absent)."""
  best = {}
  for (head_dim, regime, config), us in times.items():
    key = (head_dim, regime)
    if key not in best or us < best[key][1]:
      best[key] = (config, us)
  return best


def proposed_table(times: dict, default: bsa.ConfigTable = bsa.DEFAULT_TABLE) -> bsa.ConfigTable:
  """The ConfigTable the sweep supports: per head-dim class the dense winner (the default's
  entry where nothing was measured), plus sparse and causal entries where their own winner is
  more than ``MARGIN`` faster than the dense winner on that regime."""
  best = winners(times)
  fields = {}
  for head_dim, size in ((64, "small"), (128, "large")):
    dense = best.get((head_dim, "dense"), (getattr(default, f"prefill_{size}_head"), None))[0]
    fields[f"prefill_{size}_head"] = dense
    for regime in ("sparse", "causal"):
      entry = getattr(default, f"{regime}_{size}_head")
      if (head_dim, regime) in best:
        config, us = best[head_dim, regime]
        dense_us = times.get((head_dim, regime, dense))
        entry = config if dense_us is None or us < (1 - MARGIN) * dense_us else None
      fields[f"{regime}_{size}_head"] = entry
  return dataclasses.replace(default, **fields)


def table_literal(table: bsa.ConfigTable) -> str:
  """Python source of ``table`` to paste over ``DEFAULT_TABLE`` (entries equal to None left out)."""
  lines = ["DEFAULT_TABLE = ConfigTable("]
  for field in dataclasses.fields(table):
    value = getattr(table, field.name)
    if value is None:
      continue
    if isinstance(value, bsa.AttentionConfig):
      # Every field that differs from AttentionConfig's default (head_group included).
      defaults = bsa.AttentionConfig(block_q=value.block_q, block_k=value.block_k)
      args = ", ".join(f"{f.name}={getattr(value, f.name)}" for f in dataclasses.fields(value)
                       if f.name in ("block_q", "block_k", "num_warps", "num_stages")
                       or getattr(value, f.name) != getattr(defaults, f.name))
      value = f"AttentionConfig({args})"
    lines.append(f"    {field.name}={value},")
  lines[-1] = lines[-1].rstrip(",") + ")"
  return "\n".join(lines)


def markdown(times: dict, errors: dict, table: bsa.ConfigTable,
             default: bsa.ConfigTable = bsa.DEFAULT_TABLE) -> list[str]:
  """The sweep section of attention_table.md: per head dim one row per variant (us per regime,
  the winner starred, DEFAULT_TABLE's pick marked), then the proposed table as source."""
  best = winners(times)
  text = ["## Config sweep (B4 H16 S8192 bf16, 128x128 mask blocks; sparse = density 0.1)", ""]
  for head_dim, size in ((64, "small"), (128, "large")):
    current = getattr(default, f"prefill_{size}_head")
    text += [f"### head dim {head_dim}", "", "| config | " + " | ".join(REGIMES) + " | note |",
             "|---|---|---|---|---|"]
    for config in VARIANTS[head_dim] + CAUSAL_VARIANTS[head_dim]:
      cells = []
      for regime in REGIMES:
        us = times.get((head_dim, regime, config))
        star = "*" if us is not None and best[head_dim, regime][0] == config else ""
        cells.append(f"{us:.1f}{star}" if us is not None else "-")
      note = "DEFAULT_TABLE" if config == current else ""
      error = errors.get((head_dim, config))
      note += f" {error[:120]}" if error else ""
      text.append(f"| {config_name(config)} | " + " | ".join(cells) + f" | {note.strip()} |")
    for regime in REGIMES:
      if (head_dim, regime) in best and (head_dim, regime, current) in times:
        config, us = best[head_dim, regime]
        text.append(f"\n{regime}: best {config_name(config)} {us:.1f} us, DEFAULT_TABLE's "
                    f"{times[head_dim, regime, current] / us:.3f}x that")
    text.append("")
  return text + ["Proposed table (pallas_kernels/block_sparse_attention.py):", "", "```python",
                 table_literal(table), "```", ""]
