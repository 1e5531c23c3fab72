"""N:M positions packed into uint32 words: the layout the N:M kernel reads, in plain jax.numpy.

Its own module (no Pallas import) so that ``jsparse.formats.nm`` can build a matrix's packed
positions without importing the kernels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def packed_layout(nm: tuple[int, int]) -> tuple[int, int]:
  """(bits per position, groups per uint32 word) of ``pack_indices``: log2(m) bits per kept
  value, n of them per group, and a power-of-two number of groups per word (Triton's ``arange``)."""
  n, m = nm
  bits = max(m - 1, 1).bit_length()
  fit = 32 // (n * bits)
  if not fit:
    raise ValueError(f"{n}:{m} needs {n * bits} bits of positions a group: more than a word")
  return bits, 1 << (fit.bit_length() - 1)


def pack_indices(indices: jax.Array, nm: tuple[int, int]) -> jax.Array:
  """Positions packed into uint32 words: [M, K / m * n] -> [M, ceil(K / m / g)], g groups per
  word (``packed_layout``); group ``j`` of a word holds slot ``s`` at bit
  ``j * n * bits + s * bits``. For 2:4, 4 bits a group: 1/8 byte per weight instead of 1/2."""
  n, m = nm
  bits, per_word = packed_layout(nm)
  rows, stored = indices.shape
  slots = indices.astype(jnp.uint32).reshape(rows, stored // n, n)
  codes = jnp.sum(slots << (jnp.arange(n, dtype=jnp.uint32) * bits), axis=2, dtype=jnp.uint32)
  codes = jnp.pad(codes, ((0, 0), (0, -codes.shape[1] % per_word)))
  shifts = jnp.arange(per_word, dtype=jnp.uint32) * (n * bits)
  words = codes.reshape(rows, codes.shape[1] // per_word, per_word)  # no -1: rows may be 0
  return jnp.sum(words << shifts, axis=2, dtype=jnp.uint32)
