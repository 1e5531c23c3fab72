"""The attention config sweep's pure parts: variants within budget, winners, the proposed
ConfigTable (specialised entries only past the margin) and its source text, which must rebuild
the same table when pasted."""

import dataclasses

from experiments.gpu_checks import attention_sweep as sweep  # noqa: E402
from pallas_kernels import block_sparse_attention as bsa  # noqa: E402
from pallas_kernels.block_sparse_attention import AttentionConfig, ConfigTable  # noqa: E402,F401


def test_variants_are_distinct_within_budget_and_hold_the_default():
  for head_dim, default in ((64, bsa.DEFAULT_TABLE.prefill_small_head),
                            (128, bsa.DEFAULT_TABLE.prefill_large_head)):
    variants = sweep.VARIANTS[head_dim]
    assert len(set(variants)) == len(variants) <= 16
    assert default in variants
    assert all(c.block_q == 128 for c in variants if c.num_warps == 8)


def test_proposed_table_takes_winners_and_specialises_only_past_the_margin():
  a, b, c = sweep.VARIANTS[128][:3]
  times = {(128, "dense", a): 100.0, (128, "dense", b): 110.0,
           (128, "sparse", a): 10.0, (128, "sparse", b): 9.0,  # 10% faster: its own entry
           (128, "causal", a): 50.0, (128, "causal", c): 49.5}  # 1% faster: not worth an entry
  table = sweep.proposed_table(times)
  assert table.prefill_large_head == a and table.sparse_large_head == b
  assert table.causal_large_head is None
  assert table.prefill_small_head == bsa.DEFAULT_TABLE.prefill_small_head  # nothing measured
  assert sweep.winners(times)[128, "causal"] == (c, 49.5)
  namespace = {}
  exec(sweep.table_literal(table), globals(), namespace)
  assert namespace["DEFAULT_TABLE"] == table
  text = "\n".join(sweep.markdown(times, {(128, c): "ValueError: boom"}, table))
  assert "9.0*" in text and "boom" in text


def test_table_literal_keeps_head_group():
  # The source printed for pasting must rebuild every field, head_group included.
  grouped = bsa.AttentionConfig(block_q=128, block_k=128, num_warps=4, num_stages=3, head_group=8)
  table = dataclasses.replace(bsa.DEFAULT_TABLE, causal_small_head=grouped)
  namespace = {}
  exec(sweep.table_literal(table), globals(), namespace)
  assert namespace["DEFAULT_TABLE"].causal_small_head.head_group == 8
  assert namespace["DEFAULT_TABLE"] == table
