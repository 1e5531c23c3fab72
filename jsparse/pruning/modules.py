"""Pruning over a Flax NNX module tree: masks per layer or global, in-place masking for gradual
pruning, and replacement of dense layers by sparse ones with a report."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jsparse.nn import SparseConv, SparseLinear
from jsparse.pruning import masks as masks_lib

METHODS = ("magnitude", "random", "nm", "block")
Path = tuple


@dataclasses.dataclass(frozen=True)
class LayerReport:
  """One pruned layer: its path, type, weight shape [out, in], format, sparsity and stored count."""

  path: str
  layer: str
  shape: tuple[int, int]
  format: str
  sparsity: float
  stored: int


@dataclasses.dataclass
class PruningReport:
  """What ``prune`` did: the sparsified layers and the layers it left dense, with reasons."""

  pruned: list[LayerReport]
  skipped: list[tuple[str, str]]

  @property
  def total_sparsity(self) -> float:
    """Pruned fraction of the weights of the pruned layers together."""
    total = sum(r.shape[0] * r.shape[1] for r in self.pruned)
    return 1.0 - sum(r.stored for r in self.pruned) / total if total else 0.0

  def __str__(self) -> str:
    lines = ["| layer | type | [out, in] | format | sparsity | stored |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.path} | {r.layer} | {r.shape[0]}x{r.shape[1]} | {r.format} | "
              f"{r.sparsity:.4f} | {r.stored} |" for r in self.pruned]
    lines.append(f"\ntotal sparsity of the pruned layers: {self.total_sparsity:.4f}")
    lines += [f"left dense: {path}: {reason}" for path, reason in self.skipped]
    return "\n".join(lines)


def _name(path: Path) -> str:
  return "/".join(str(p) for p in path)


def dense_weight(layer: nnx.Module) -> np.ndarray:
  """The weight of an ``nnx.Linear`` or 2-D ``nnx.Conv`` in the sparse layout [out, in(*kh*kw)]."""
  kernel = np.asarray(layer.kernel[...])
  if isinstance(layer, nnx.Conv):
    return kernel.transpose(3, 2, 0, 1).reshape(kernel.shape[-1], -1)
  return kernel.T


def prunable_layers(model: nnx.Module) -> tuple[dict[Path, nnx.Module], list[tuple[str, str]]]:
  """Dense ``nnx.Linear`` and 2-D ``nnx.Conv`` layers by path, and other weight-holding layers
  (left dense) with the reason."""
  layers, skipped = {}, []
  for path, module in nnx.iter_modules(model):
    if isinstance(module, (SparseLinear, SparseConv)):
      continue
    if isinstance(module, nnx.Linear):
      layers[path] = module
    elif isinstance(module, nnx.Conv):
      dilated = any(d not in (None, 1, (1, 1)) for d in (module.input_dilation,
                                                          module.kernel_dilation))
      if module.kernel[...].ndim != 4 or module.feature_group_count != 1 or dilated:
        skipped.append((_name(path), "only 2-D convolutions without dilation or groups"))
      else:
        layers[path] = module
    elif isinstance(module, (nnx.Embed, nnx.LinearGeneral, nnx.Einsum)):
      skipped.append((_name(path), f"{type(module).__name__} layers are not sparsified"))
  return layers, skipped


def compute_masks(model: nnx.Module, *, method: str = "magnitude", sparsity: float | None = None,
                  scope: str = "layer", nm: Sequence[int] = (2, 4),
                  block_shape: Sequence[int] = (16, 16), seed: int = 0,
                  exclude: Sequence[str] = ()) -> tuple[dict[Path, np.ndarray], list]:
  """Masks [out, in] of every prunable layer, and the layers that cannot take this method.

  Args:
    method: "magnitude", "random", "nm" (n largest of every m inputs) or "block" (whole
      ``block_shape`` blocks by L2 norm).
    sparsity: in [0, 1) (not for "nm").
    scope: "layer" (each layer exactly ``sparsity``) or "global" (one magnitude ranking over all
      layers, the total exact; magnitude only).
    exclude: substrings of layer paths (``"a/b/0/c"``) to leave dense.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if scope not in ("layer", "global"):
    raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
  if scope == "global" and method != "magnitude":
    raise ValueError(f"scope='global' needs method='magnitude', got method={method!r}")
  if method != "nm":
    masks_lib.check_sparsity(sparsity)
  layers, skipped = prunable_layers(model)
  weights = {}
  for path, layer in layers.items():
    name = _name(path)
    if any(pattern in name for pattern in exclude):
      skipped.append((name, "excluded"))
      continue
    weight = dense_weight(layer)
    if method == "nm" and weight.shape[1] % nm[1]:
      skipped.append((name, f"N:M group size m={nm[1]} does not divide in_features="
                            f"{weight.shape[1]}"))
    elif method == "block" and (weight.shape[0] % block_shape[0] or
                                weight.shape[1] % block_shape[1]):
      skipped.append((name, f"block_shape {tuple(block_shape)} does not divide [out, in] = "
                            f"{weight.shape}"))
    else:
      weights[path] = weight
  if scope == "global":
    return masks_lib.global_magnitude_masks(weights, sparsity), skipped
  rng = np.random.default_rng(seed)
  compute = {"magnitude": lambda w: masks_lib.magnitude_mask(w, sparsity),
             "random": lambda w: masks_lib.random_mask(w.shape, sparsity, rng),
             "nm": lambda w: masks_lib.nm_mask(w, *nm),
             "block": lambda w: masks_lib.block_mask(w, sparsity, block_shape)}[method]
  return {path: compute(weight) for path, weight in weights.items()}, skipped


def _module_at(model: nnx.Module, path: Path) -> Any:
  node = model
  for key in path:
    node = node[key] if isinstance(key, int) else getattr(node, key)
  return node


def apply_masks(model: nnx.Module, masks: dict[Path, np.ndarray]) -> None:
  """Zeroes the masked-out weights of dense layers in place (prune-while-training)."""
  for path, mask in masks.items():
    layer = _module_at(model, path)
    kernel = layer.kernel[...]
    if isinstance(layer, nnx.Conv):
      kh, kw, cin, cout = kernel.shape
      keep = np.asarray(mask).reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)
    else:
      keep = np.asarray(mask).T
    layer.kernel[...] = jnp.where(keep, kernel, 0).astype(kernel.dtype)


def prune(model: nnx.Module, *, method: str = "magnitude", sparsity: float | None = None,
          format: str | None = None, scope: str = "layer", nm: Sequence[int] = (2, 4),
          block_shape: Sequence[int] = (16, 16), seed: int = 0, exclude: Sequence[str] = (),
          masks: dict[Path, np.ndarray] | None = None, impl: str = "auto") -> PruningReport:
  """Replaces, in place, every prunable dense layer of ``model`` by its sparse pruned copy.

  ``nnx.Linear`` becomes ``SparseLinear`` and 2-D ``nnx.Conv`` becomes ``SparseConv`` with the
  mask of ``compute_masks`` (arguments as there) stored in ``format``: "csr" by default, "nm"
  for method "nm", "bsr" for method "block" (BSR with other methods stores every block that holds
  a kept weight). Layers it cannot sparsify stay dense and are listed in the report. ``masks``
  (from an earlier ``compute_masks``, e.g. after a masked fine-tune) are used as given instead.
  """
  format = format or {"nm": "nm", "block": "bsr"}.get(method, "csr")
  if format == "nm" and method != "nm":
    raise ValueError(f"format='nm' needs method='nm', got method={method!r}")
  if masks is None:
    masks, skipped = compute_masks(model, method=method, sparsity=sparsity, scope=scope, nm=nm,
                                   block_shape=block_shape, seed=seed, exclude=exclude)
  else:
    skipped = []
  pruned = []
  for path, mask in masks.items():
    layer = _module_at(model, path)
    sparse_type = SparseConv if isinstance(layer, nnx.Conv) else SparseLinear
    try:
      sparse = sparse_type.from_dense(layer, format=format, mask=mask, nm=nm,
                                      block_shape=block_shape, impl=impl)
    except ValueError as error:  # e.g. BSR blocks that do not divide this layer
      skipped.append((_name(path), str(error)))
      continue
    parent, key = _module_at(model, path[:-1]), path[-1]
    if isinstance(key, int):
      parent[key] = sparse
    else:
      setattr(parent, key, sparse)
    shape = tuple(int(d) for d in mask.shape)
    stored = int(sparse.weight.values[...].size)
    pruned.append(LayerReport(_name(path), type(layer).__name__, shape, format,
                              1.0 - stored / (shape[0] * shape[1]), stored))
  return PruningReport(pruned, skipped)
