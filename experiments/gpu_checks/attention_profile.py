"""One launch of the Mosaic GPU block-sparse attention kernel, for Nsight Compute.

    python3 -P experiments/gpu_checks/attention_profile.py HEAD_DIM DENSITY [FIELD=VALUE ...]

Runs ``block_sparse_attention_mgpu.kernel_fn`` three times (bf16, batch 4, 16 heads, sequence
8192, 128x128 blocks, random kept blocks as ``attention_config_probe.py``) with the default
launch for the mask, or the given fields of ``MgpuAttentionConfig`` replaced; profile the third
call (``ncu --kernel-name regex:block_sparse_attention --launch-skip 2 --launch-count 1``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments.gpu_checks.attention_config_probe import parse_config  # noqa: E402
from experiments.gpu_checks.attention_mask_probe import (  # noqa: E402
    BATCH, BLOCK, HEADS, SEQ, random_kept_lists)
from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention  # noqa: E402


def main() -> None:
  head_dim, density = int(sys.argv[1]), float(sys.argv[2])
  indices, counts = random_kept_lists(density)
  q, k, v = (jax.random.normal(key, (BATCH, SEQ, HEADS, head_dim), jnp.bfloat16)
             for key in jax.random.split(jax.random.key(0), 3))
  config = mgpu_attention.default_config(head_dim=head_dim, block_size=(BLOCK, BLOCK),
                                         q_len=SEQ, max_kept=indices.shape[-1])
  config = dataclasses.replace(config, **parse_config(",".join(sys.argv[3:])))
  attend = jax.jit(lambda *args: mgpu_attention.kernel_fn(*args, block_size=(BLOCK, BLOCK),
                                                          config=config))
  for _ in range(3):
    attend(q, k, v, indices, counts).block_until_ready()
  print(f"head dim {head_dim}, density {density}, kept width {indices.shape[-1]}, {config}")


if __name__ == "__main__":
  main()
