"""The block-sparse flash-attention kernels as the ``pallas`` lowering of op ``"attention"``.

Serves ``jsparse.block_sparse_attention`` (format ``"block"``) for float16, bfloat16 and float32
q/k/v with a power-of-two head dim in [16, 256] and power-of-two mask blocks >= 16 (the Triton
kernel's contract, ``_supports``); anything else (float64, head dim 96, blocks of 8) stays on the
reference lowering under ``"auto"``, and a forced ``impl="pallas"`` says why.

Two kernels sit behind the one lowering; ``choose_kernel`` (pure Python, run when a call is
lowered) picks one per call:

- ``"mosaic"``, ``pallas_kernels.block_sparse_attention_mgpu`` (Mosaic GPU, FlashAttention-3
  style: warp-specialized, TMA and wgmma; Hopper only), for prefill when every local CUDA device
  is sm_90 and its ``supports()`` accepts the call: bfloat16/float16, head dim 64 or 128,
  ``Sq`` a multiple of 128, ``Sk`` a multiple of ``bk``, ``bq`` a multiple of 128, ``bk`` a
  multiple of 64 (e.g. the 128 x 128 mask blocks of long-context prefill);
- ``"triton"``, ``pallas_kernels.block_sparse_attention`` (Triton), for everything else:
  decoding (at most 16 queries in one query block: split-K), float32, other head dims, small or
  ragged blocks, GPUs other than Hopper.

The device check reads ``compute_capability`` of ``jax.devices("cuda")`` when the call is
lowered, as Mosaic GPU itself infers its target: lowering for CUDA where JAX sees no CUDA device
(``.lower(lowering_platforms=("cuda",))`` on a CPU host) picks Triton, which runs on any
sm_80+ GPU. Both kernels' launch configurations are their modules' ``default_config``.

Interpret mode (``JSPARSE_PALLAS_INTERPRET=1``, on the CPU) runs the Triton kernel's
interpreter by default: the Mosaic GPU interpreter simulates every warpgroup, barrier and TMA
copy and is several times slower. The environment variable ``JSPARSE_ATTENTION_KERNEL``
(``auto``, the default; ``triton``; ``mosaic``), read when a call is lowered, overrides the
choice on the GPU and in interpret mode alike; ``mosaic`` skips the device check (so it also
runs the Mosaic GPU interpreter on the CPU) but still needs ``supports()``, and says why not.
Like every lowering choice it is fixed once a shape is compiled: set it before the first call.
"""

from __future__ import annotations

from typing import Any, Sequence

from jsparse._gpu import cuda_capability, kernel_override, pick_kernel, register_pallas
from pallas_kernels import block_sparse_attention

KERNEL_ENV_VAR = "JSPARSE_ATTENTION_KERNEL"


def kernel_choice() -> str:
  """``JSPARSE_ATTENTION_KERNEL`` (``"auto"`` when unset or empty), checked."""
  return kernel_override(KERNEL_ENV_VAR)


def _mgpu():
  # Imported on first use: Mosaic GPU's Pallas module adds ~0.5 s to ``import jsparse``.
  from pallas_kernels import block_sparse_attention_mgpu
  return block_sparse_attention_mgpu


def is_decoding(q_len: int, block_size: Sequence[int]) -> bool:
  """Whether the Triton kernel runs this query length split-K (few queries, one query block)."""
  return (q_len <= block_sparse_attention.MAX_DECODE_QUERIES
          and q_len <= block_size[0])


def choose_kernel(avals: Sequence[Any], layout: Any, *, interpret: bool,
                  capability: tuple[int, int] | None, choice: str = "auto") -> tuple[str, str]:
  """Which kernel lowers a call the Triton kernel supports: ``("mosaic" | "triton", why)``.

  Args:
    avals: q, k, v, kv_block_indices, kv_block_counts (arrays, tracers or avals: shapes and
      dtypes only).
    layout: the call's ``AttentionLayout`` (``block_size``, ``causal``).
    interpret: whether the kernel runs in interpret mode (CPU).
    capability: ``cuda_capability()`` of the devices it will run on (ignored when interpreting).
    choice: ``kernel_choice()``.

  Raises:
    ValueError: ``choice="mosaic"`` and the Mosaic GPU kernel's ``supports()`` refuses the call.
  """
  block_size = tuple(layout.block_size)
  return pick_kernel(
      KERNEL_ENV_VAR, choice, interpret=interpret, capability=capability,
      mosaic_supports=lambda: _mgpu().supports(*avals, block_size=block_size,
                                               causal=layout.causal),
      mosaic_reason="Hopper prefill within the Mosaic GPU kernel's restrictions",
      triton_reason=("decoding: the Triton kernel's split-K"
                     if is_decoding(avals[0].shape[1], block_size) else None))


def _attention(q, k, v, kv_block_indices, kv_block_counts, *, interpret: bool, layout: Any,
               **unused_params):
  operands = (q, k, v, kv_block_indices, kv_block_counts)
  kernel, _ = choose_kernel(operands, layout, interpret=interpret,
                            capability=None if interpret else cuda_capability(),
                            choice=kernel_choice())
  module = _mgpu() if kernel == "mosaic" else block_sparse_attention
  return module.kernel_fn(*operands, block_size=tuple(layout.block_size), causal=layout.causal,
                          scale=layout.scale, interpret=interpret)


def _supports(avals: Sequence[Any], params: dict) -> bool | str:
  """The Triton kernel's argument checks (the Mosaic GPU kernel's are stricter), run on the
  abstract values: True or why not."""
  try:
    block_sparse_attention.check_arguments(*avals, tuple(params["layout"].block_size))
  except (TypeError, ValueError) as error:
    return str(error)
  return True


register_pallas("attention", "block", _attention, supports=_supports)
