"""Helpers shared by the tensor-core kernels: Triton tile checks, operand padding, split-K, the
shared memory a block may use."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

# tl.dot needs at least 16 in every dimension of its tiles.
MIN_DOT_TILE = 16

# Shared memory one block may use, by compute capability (CUDA C++ Programming Guide, "Technical
# Specifications per Compute Capability"); others, and a capability JAX does not report, get
# the smallest (sm_86, sm_89, sm_120: 99 KiB).
SHARED_MEMORY_BYTES = {(8, 0): 163 * 1024, (8, 7): 163 * 1024, (9, 0): 227 * 1024,
                       (10, 0): 227 * 1024, (10, 3): 227 * 1024}
HOPPER_SHARED_MEMORY_BYTES = SHARED_MEMORY_BYTES[(9, 0)]
SMALLEST_SHARED_MEMORY_BYTES = 99 * 1024


def shared_memory_limit() -> int:
  """Bytes of shared memory a block may use on the CUDA devices JAX sees (the smallest where
  they differ); Hopper's 227 KiB where JAX sees none (interpret mode, or lowering for CUDA on a
  CPU host)."""
  try:
    devices = jax.devices("cuda")
  except RuntimeError:  # no CUDA backend in this process
    return HOPPER_SHARED_MEMORY_BYTES
  limits = []
  for device in devices:
    major, minor = (int(part) for part in str(device.compute_capability).split(".")[:2])
    limits.append(SHARED_MEMORY_BYTES.get((major, minor), SMALLEST_SHARED_MEMORY_BYTES))
  return min(limits) if limits else HOPPER_SHARED_MEMORY_BYTES


def is_power_of_two(value: int) -> bool:
  return value > 0 and value & (value - 1) == 0


def floor_power_of_two(value: int) -> int:
  """The largest power of two <= ``value`` (1 for ``value`` < 2)."""
  return 1 << max(value, 1).bit_length() - 1


def check_dot_tiles(**tiles: int) -> bool | str:
  """True when every named tile size is a power of two >= 16 (Triton's ``tl.dot``), else why not."""
  for name, size in tiles.items():
    if not is_power_of_two(size) or size < MIN_DOT_TILE:
      return f"{name}={size} must be a power of two >= {MIN_DOT_TILE} for the Triton backend"
  return True


def dot_precision(dtype) -> jax.lax.Precision | None:
  """float32 tiles multiply in full float32 (Triton's default for float32 is TF32, ~1e-3)."""
  return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None


def popcount32(bits: jax.Array) -> jax.Array:
  """Set bits of each uint32 element, as int32, with shifts, masks, adds and one multiply.

  ``jax.lax.population_count`` lowers to ``math.ctpop``, which Triton (jax 0.11.2) cannot
  legalize on the GPU; this is the usual SWAR count, elementwise and Triton-safe.
  """
  x = bits.astype(jnp.uint32)
  x = x - ((x >> 1) & jnp.uint32(0x55555555))
  x = (x & jnp.uint32(0x33333333)) + ((x >> 2) & jnp.uint32(0x33333333))
  x = (x + (x >> 4)) & jnp.uint32(0x0F0F0F0F)
  return ((x * jnp.uint32(0x01010101)) >> 24).astype(jnp.int32)


def popcount32_ptx(bits: jax.Array) -> jax.Array:
  """``popcount32`` as one ``popc.b32`` instruction an element (inline PTX): Triton backend on
  the GPU only (the interpreter cannot run PTX)."""
  from jax.experimental.pallas import triton as plt
  # Triton's inline asm takes signless integers: the bits go in as int32 (same 32 bits).
  signless = jax.lax.bitcast_convert_type(bits.astype(jnp.uint32), jnp.int32)
  (count,) = plt.elementwise_inline_asm(
      "popc.b32 $0, $1;", args=[signless], constraints="=r,r", pack=1,
      result_shape_dtypes=[jax.ShapeDtypeStruct(bits.shape, jnp.int32)])
  return count


def multiply_add(a: jax.Array, b: jax.Array, c: jax.Array, *, ptx: bool) -> jax.Array:
  """``a * b + c`` for float32 arrays of one shape.

  With ``ptx`` (the Triton backend on the GPU), one ``fma.rn.f32`` an element through inline PTX:
  the Pallas Triton lowering emits ``mulf`` and ``addf`` without the contract flag, so Triton
  never fuses them (Nsight Compute on the CSR SpMM, 2026-11-25: 0 fused, 14.7M separate float32
  instructions). Without ``ptx`` (interpret mode), the plain expression.
  """
  if not ptx:
    return a * b + c
  from jax.experimental.pallas import triton as plt
  (out,) = plt.elementwise_inline_asm(
      "fma.rn.f32 $0, $1, $2, $3;", args=[a, b, c], constraints="=f,f,f,f", pack=1,
      result_shape_dtypes=[jax.ShapeDtypeStruct(c.shape, jnp.float32)])
  return out


def pad_columns(dense: jax.Array, multiple: int) -> jax.Array:
  """``dense`` [K, N] with zero columns appended up to a multiple of ``multiple``."""
  extra = -dense.shape[1] % multiple
  return jnp.pad(dense, ((0, 0), (0, extra))) if extra else dense


def pad_rows(dense: jax.Array, rows: int) -> jax.Array:
  """``dense`` [K, N] with zero rows appended up to ``rows`` rows."""
  extra = rows - dense.shape[0]
  return jnp.pad(dense, ((0, extra), (0, 0))) if extra else dense


def split_range(split: jax.Array, num_steps: int | jax.Array,
                num_splits: int) -> tuple[jax.Array, jax.Array]:
  """``[first, last)`` of the K steps that split ``split`` (of ``num_splits``) walks;
  ``num_steps`` may be traced (``//`` keeps its dtype, where ``pl.cdiv`` would not)."""
  per_split = (num_steps + num_splits - 1) // num_splits
  first = split * per_split
  return first, jnp.minimum(first + per_split, num_steps)


def split_k_shape(shape: tuple[int, int], dtype, num_splits: int) -> jax.ShapeDtypeStruct:
  """The output of a kernel whose splits write partial sums: with one split the output itself,
  else float32 partial sums [num_splits, rows, columns] (see ``sum_splits``)."""
  if num_splits == 1:
    return jax.ShapeDtypeStruct(shape, dtype)
  return jax.ShapeDtypeStruct((num_splits, *shape), jnp.float32)


def split_k_output(shape: tuple[int, int], dtype, num_splits: int, block: tuple[int, int]):
  """(out_shape, out_spec) of a kernel over a (rows, columns, splits) grid (``split_k_shape``)."""
  if num_splits == 1:
    spec = pl.BlockSpec(block, lambda i, j, s: (i, j))
  else:
    spec = pl.BlockSpec((None, *block), lambda i, j, s: (s, i, j))
  return split_k_shape(shape, dtype, num_splits), spec


def sum_splits(out: jax.Array, dtype) -> jax.Array:
  """The product from ``split_k_output``'s output: partial sums added (in float32) and cast."""
  return out if out.ndim == 2 else out.sum(axis=0).astype(dtype)
