"""Helpers shared by the tensor-core kernels: Triton tile checks and operand padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# tl.dot needs at least 16 in every dimension of its tiles.
MIN_DOT_TILE = 16


def is_power_of_two(value: int) -> bool:
  return value > 0 and value & (value - 1) == 0


def check_dot_tiles(**tiles: int) -> bool | str:
  """True when every named tile size is a power of two >= 16 (Triton's ``tl.dot``), else why not."""
  for name, size in tiles.items():
    if not is_power_of_two(size) or size < MIN_DOT_TILE:
      return f"{name}={size} must be a power of two >= {MIN_DOT_TILE} for the Triton backend"
  return True


def pad_columns(dense: jax.Array, multiple: int) -> jax.Array:
  """``dense`` [K, N] with zero columns appended up to a multiple of ``multiple``."""
  extra = -dense.shape[1] % multiple
  return jnp.pad(dense, ((0, 0), (0, extra))) if extra else dense


def pad_rows(dense: jax.Array, rows: int) -> jax.Array:
  """``dense`` [K, N] with zero rows appended up to ``rows`` rows."""
  extra = rows - dense.shape[0]
  return jnp.pad(dense, ((0, extra), (0, 0))) if extra else dense
