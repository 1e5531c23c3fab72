"""Gradual pruning schedules."""

from __future__ import annotations

from jsparse.pruning.masks import check_sparsity


def cubic_sparsity(step: int, *, final_sparsity: float, begin_step: int, end_step: int,
                   initial_sparsity: float = 0.0, frequency: int = 1) -> float:
  """Zhu & Gupta's cubic schedule: the target sparsity at training step ``step``.

  ``s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_n - t_0)) ** 3`` between ``begin_step`` (t_0)
  and ``end_step`` (t_n), ``s_i`` before, ``s_f`` after; ``t`` is rounded down to a multiple of
  ``frequency`` steps after t_0 (the mask is updated every ``frequency`` steps).

  References:
    M. Zhu, S. Gupta. To prune, or not to prune: exploring the efficacy of pruning for model
    compression. arXiv:1710.01878, 2017.
  """
  final_sparsity = check_sparsity(final_sparsity, "final_sparsity")
  initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
  if not 0 <= begin_step < end_step:
    raise ValueError(f"need 0 <= begin_step < end_step, got begin_step={begin_step}, "
                     f"end_step={end_step}")
  if frequency < 1:
    raise ValueError(f"frequency must be a positive int, got {frequency}")
  if step <= begin_step:
    return initial_sparsity
  if step >= end_step:
    return final_sparsity
  step = begin_step + (step - begin_step) // frequency * frequency
  remaining = 1.0 - (step - begin_step) / (end_step - begin_step)
  return final_sparsity + (initial_sparsity - final_sparsity) * remaining ** 3
