"""Weight shapes of current LLMs, which DLMC (2020: Transformer-base, ResNet-50) does not cover.

Shapes are [out_features, in_features], the layout of a DLMC matrix: the layer computes
``W @ X`` with X dense [in_features, tokens].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jsparse.datasets import _build
from jsparse.datasets.generators import magnitude_pruned, uniform_random
from jsparse.formats.base import SparseMatrix

LLM_SHAPES: dict[str, tuple[int, int]] = {
    # Llama-3-8B: d_model 4096, 32 query heads and 8 key/value heads (GQA) of 128, d_ff 14336.
    "llama3_8b.attn_qo": (4096, 4096),
    "llama3_8b.attn_kv": (1024, 4096),
    "llama3_8b.mlp_up": (14336, 4096),
    "llama3_8b.mlp_down": (4096, 14336),
    # Multi-head latent attention (DeepSeek-V3: d_model 7168, latent rank 512): a low-rank pair.
    "mla.down": (512, 7168),
    "mla.up": (7168, 512),
}
METHODS = ("magnitude", "uniform")


def llm_weight(name: str, sparsity: float, *, method: str = "magnitude", seed: int = 0,
               dtype: Any = np.float32, format: str = "csr") -> SparseMatrix:
  """A sparse weight of one of the ``LLM_SHAPES``.

  ``method="magnitude"`` draws a dense standard normal weight and keeps its largest magnitudes
  (``magnitude_pruned``, global); ``"uniform"`` is ``uniform_random``. Known limitation: the
  magnitudes of i.i.d. Gaussian entries are exchangeable, so magnitude pruning gives the same
  pattern distribution as uniform sampling (only the kept values differ: |w| above a threshold).
  Trained weights prune to far more uneven rows and columns; use DLMC for those patterns.

  Args:
    name: a key of ``LLM_SHAPES``, e.g. "llama3_8b.mlp_up".
    sparsity: fraction of zeros, in [0, 1]; nnz = ``round((1 - sparsity) * M * K)``.
    method: "magnitude" or "uniform".
    seed: seed of the weight (or the pattern) and the values.
    dtype: value dtype. format: "csr" or "coo".

  Returns:
    CSR (or COO) [out_features, in_features].

  References:
    Grattafiori et al. "The Llama 3 Herd of Models", arXiv 2407.21783.
    DeepSeek-AI. "DeepSeek-V3 Technical Report", arXiv 2412.19437.
  """
  if name not in LLM_SHAPES:
    raise ValueError(f"name must be one of {sorted(LLM_SHAPES)}, got {name!r}")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  shape = LLM_SHAPES[name]
  if method == "uniform":
    return uniform_random(shape, sparsity, seed=seed, dtype=dtype, format=format)
  weight = _build.normal_values(np.random.default_rng(seed), shape, dtype)
  return magnitude_pruned(weight, sparsity, format=format)
