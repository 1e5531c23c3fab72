"""LLM weight shapes (``jsparse/datasets/llm_shapes.py``)."""

import numpy as np
import pytest

import jsparse
from jsparse.datasets import LLM_SHAPES, llm_weight
from tests.helpers import assert_same_matrix


def test_the_listed_shapes():
  assert LLM_SHAPES == {
      "llama3_8b.attn_qo": (4096, 4096), "llama3_8b.attn_kv": (1024, 4096),
      "llama3_8b.mlp_up": (14336, 4096), "llama3_8b.mlp_down": (4096, 14336),
      "mla.down": (512, 7168), "mla.up": (7168, 512)}


@pytest.mark.parametrize("name", sorted(LLM_SHAPES))
def test_uniform_weight_of_every_shape(name):
  matrix = llm_weight(name, 0.999, method="uniform", seed=1)
  num_rows, num_cols = LLM_SHAPES[name]
  assert isinstance(matrix, jsparse.CSR) and matrix.shape == (num_rows, num_cols)
  assert matrix.nse == round(0.001 * num_rows * num_cols)


def test_magnitude_weight_keeps_large_values():
  matrix = llm_weight("mla.down", 0.9, seed=0)
  assert matrix.shape == (512, 7168) and matrix.nse == round(0.1 * 512 * 7168)
  # The kept tenth of a standard normal: |w| above its 0.9 quantile, 1.645.
  assert np.abs(np.asarray(matrix.data)).min() == pytest.approx(1.645, abs=0.01)
  assert_same_matrix(llm_weight("mla.down", 0.9, seed=0), matrix)
  assert not np.array_equal(llm_weight("mla.down", 0.9, seed=1).col_indices, matrix.col_indices)


def test_llm_weight_options():
  matrix = llm_weight("mla.up", 0.99, dtype=np.float16, format="coo")
  assert isinstance(matrix, jsparse.COO) and matrix.dtype == np.float16
  with pytest.raises(ValueError, match="name must be one of"):
    llm_weight("llama3_70b.mlp_up", 0.5)
  with pytest.raises(ValueError, match="method must be one of"):
    llm_weight("mla.up", 0.5, method="wanda")
