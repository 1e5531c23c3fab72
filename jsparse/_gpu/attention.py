"""The block-sparse flash-attention kernel as the ``pallas`` lowering of op ``"attention"``.

Serves ``jsparse.block_sparse_attention`` (format ``"block"``) for float16, bfloat16 and float32
q/k/v with a power-of-two head dim in [16, 256] and power-of-two mask blocks >= 16; anything else
(float64, head dim 96, blocks of 8) stays on the reference lowering under ``"auto"``, and a forced
``impl="pallas"`` says why. The launch configuration is ``default_config`` from
``DEFAULT_TABLE``: split-K for decoding (at most 16 queries in one query block), prefill tiles
per head dim, kept fraction and causal or not. A call launches the attention kernel alone: each
program counts its unmasked and visible kept tiles from its own kept list, so nothing derived from
the mask needs caching between calls.
"""

from __future__ import annotations

from typing import Any, Sequence

from jsparse._gpu import register_pallas
from pallas_kernels import block_sparse_attention


def _attention(q, k, v, kv_block_indices, kv_block_counts, *, interpret: bool, layout: Any,
               **unused_params):
  return block_sparse_attention.kernel_fn(
      q, k, v, kv_block_indices, kv_block_counts, block_size=tuple(layout.block_size),
      causal=layout.causal, scale=layout.scale, interpret=interpret)


def _supports(avals: Sequence[Any], params: dict) -> bool | str:
  """The kernel's own argument checks, run on the abstract values: True or why not."""
  try:
    block_sparse_attention.check_arguments(*avals, tuple(params["layout"].block_size))
  except (TypeError, ValueError) as error:
    return str(error)
  return True


register_pallas("attention", "block", _attention, supports=_supports)
