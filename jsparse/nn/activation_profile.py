"""Activation sparsity: the fraction of zeros and near-zeros after each activation of a model."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class ActivationStats:
  """One activation site: its path, the activation's element count and, per threshold t, the
  fraction of elements with ``|a| <= t`` (t = 0 counts exact zeros)."""

  path: str
  size: int
  fraction_below: dict[float, float]


def profile_activations(model: nnx.Module, run: Callable[[nnx.Module], Any], *,
                        thresholds: Sequence[float] = (0.0, 1e-3, 1e-2, 1e-1),
                        attribute: str = "activation") -> list[ActivationStats]:
  """Runs ``run(model)`` once, eagerly, recording every sub-module's ``attribute`` callable.

  Each module that holds a callable ``activation`` (``SparseTransformerBlock``'s MLP activation)
  has it wrapped for the duration of the call; the recorded statistics are summed over all calls
  of that site. ``run`` must not ``jit`` the model (values must be concrete).

  Returns:
    one ``ActivationStats`` per site that ran, in module order.
  """
  counts: dict[str, list] = {}
  originals = []
  for path, module in nnx.iter_modules(model):
    function = getattr(module, attribute, None)
    if not callable(function) or isinstance(function, nnx.Module):
      continue
    name = "/".join(str(p) for p in path) or "."
    counts[name] = [0, np.zeros(len(thresholds))]

    def recording(x, function=function, name=name):
      out = function(x)
      magnitude = np.abs(np.asarray(out).astype(np.float64))
      counts[name][0] += magnitude.size
      counts[name][1] += [np.count_nonzero(magnitude <= t) for t in thresholds]
      return out

    originals.append((module, function))
    setattr(module, attribute, recording)
  try:
    run(model)
  finally:
    for module, function in originals:
      setattr(module, attribute, function)
  return [ActivationStats(name, size, {float(t): float(c / size) for t, c in zip(thresholds, hits)})
          for name, (size, hits) in counts.items() if size]
