"""Row scheduling shared by the CSR kernels: rows ordered by nonzero count (a row swizzle).

Launching the longest rows first and neighbouring programs on rows of similar length balances the
work across the GPU's SMs (Gale et al., "Sparse GPU Kernels for Deep Learning", SC20, section 5).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt


def rows_by_length(row_offsets: jax.Array, *, max_row_length: int) -> jax.Array:
  """The row indices, longest rows first, bucketed by powers of two (no sort).

  Rows go into buckets by ``bit_length(row length)`` (0, 1, 2-3, 4-7, ...), buckets in decreasing
  order and rows in increasing index within a bucket: a counting sort made of one prefix sum over
  a ``[buckets, M]`` indicator and one scatter. An argsort of the ``M`` lengths was the earlier
  schedule; at ``M = 4096`` it cost tens of microseconds per call on an H100 (round 1: SpMV took
  ~70 us at every sparsity). Rows of equal bucket differ in length by less than 2x, which keeps
  the long rows first (what the load balance needs); balanced matrices (all rows in one bucket)
  keep their natural order.

  Args:
    row_offsets: ``[M + 1]`` int32, monotone CSR row offsets.
    max_row_length: a static upper bound on any row's length (e.g. ``min(K, nse)``); it sets
      the number of buckets, ``bit_length(max_row_length) + 1``.

  Returns:
    ``[M]`` int32, a permutation of ``0 .. M - 1``; jit-able.
  """
  num_rows = row_offsets.shape[0] - 1
  num_buckets = max(int(max_row_length), 0).bit_length() + 1
  lengths = jnp.maximum(row_offsets[1:] - row_offsets[:-1], 0).astype(jnp.int32)
  # bit_length(length) = 32 - clz(length); bucket 0 holds the longest rows.
  buckets = jnp.clip(jax.lax.clz(lengths) - (32 - num_buckets + 1), 0, num_buckets - 1)
  indicator = (buckets[None, :] == jnp.arange(num_buckets, dtype=jnp.int32)[:, None])
  # Flattened bucket-major, the running count at (bucket[i], i) is row i's rank in the order.
  ranks = jnp.cumsum(indicator.astype(jnp.int32).reshape(-1)) - 1
  positions = ranks[buckets * num_rows + jnp.arange(num_rows, dtype=jnp.int32)]
  return jnp.zeros((num_rows,), jnp.int32).at[positions].set(
      jnp.arange(num_rows, dtype=jnp.int32), unique_indices=True)


def launch_slots(first, rows_per_program: int, num_rows: int) -> list:
  """The launch-order slots ``first .. first + rows_per_program - 1`` of one program, those past
  row ``M - 1`` replaced by ``first`` (static count; the first slot is always in range)."""
  return [first if r == 0 else jnp.where(first + r < num_rows, first + r, first)
          for r in range(rows_per_program)]


def check_csr_operands(data_or_none, col_indices: jax.Array, row_offsets: jax.Array,
                       num_rows: int) -> None:
  """Raises ValueError/TypeError naming the CSR argument whose shape or dtype is wrong."""
  if row_offsets.ndim != 1 or row_offsets.shape[0] != num_rows + 1:
    raise ValueError(f"row_offsets must have shape [M + 1] = ({num_rows + 1},), got "
                     f"{tuple(row_offsets.shape)}")
  if col_indices.ndim != 1:
    raise ValueError(f"col_indices must be 1-D [nse], got shape {tuple(col_indices.shape)}")
  for name, array in (("col_indices", col_indices), ("row_offsets", row_offsets)):
    if array.dtype != jnp.int32:
      raise TypeError(f"{name} must be int32, got {array.dtype}")
  if data_or_none is not None and data_or_none.shape != col_indices.shape:
    raise ValueError(f"data must have the shape of col_indices {tuple(col_indices.shape)}, got "
                     f"{tuple(data_or_none.shape)}")


def check_spmm_operands(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array,
                        dense: jax.Array, num_rows: int, *, dense_name: str) -> None:
  """The CSR SpMM kernels' operands: a CSR matrix of a kernel value dtype and a 2-D dense
  operand (called ``dense_name`` in the error) of data's dtype. Raises ValueError/TypeError
  naming the argument."""
  check_csr_operands(data, col_indices, row_offsets, num_rows)
  check_value_dtype("data", data)
  if dense.ndim != 2 or dense.dtype != data.dtype:
    raise ValueError(f"{dense_name} must be 2-D [K, N] of data's dtype {data.dtype}, got "
                     f"{dense.dtype} {tuple(dense.shape)}")


def check_sddmm_operands(col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array,
                         y: jax.Array, num_rows: int) -> None:
  """The SDDMM kernels' operands: a CSR pattern, X ``[M, D]`` and Y ``[N, D]`` of one float
  dtype. Raises ValueError/TypeError naming the argument."""
  check_csr_operands(None, col_indices, row_offsets, num_rows)
  check_value_dtype("x", x)
  if x.ndim != 2 or x.shape[0] != num_rows:
    raise ValueError(f"x must be [M, D] with M = {num_rows}, got shape {tuple(x.shape)}")
  if y.ndim != 2 or y.shape[1] != x.shape[1] or y.dtype != x.dtype:
    raise ValueError(f"y must be [N, D] with D = {x.shape[1]} and x's dtype {x.dtype}, got "
                     f"{y.dtype} {tuple(y.shape)}")


def check_value_dtype(name: str, array: jax.Array) -> None:
  """Raises TypeError unless ``array`` is float16, bfloat16 or float32 (what the kernels store)."""
  if array.dtype not in (jnp.float16, jnp.bfloat16, jnp.float32):
    raise TypeError(f"{name} must be float16, bfloat16 or float32, got {array.dtype}")


def entry_rows(row_offsets: jax.Array, nse: int) -> jax.Array:
  """The row of each of the ``nse`` stored positions, ``M`` for padding (``>= row_offsets[M]``).

  Args:
    row_offsets: ``[M + 1]`` int32 CSR row offsets.
    nse: the number of stored positions (``col_indices.shape[0]``).

  Returns:
    ``[nse]`` int32, in ``[0, M]``.
  """
  positions = jnp.arange(nse, dtype=row_offsets.dtype)
  rows = jnp.searchsorted(row_offsets, positions, side="right").astype(jnp.int32) - 1
  return jnp.where(positions < row_offsets[-1], rows, row_offsets.shape[0] - 1)


def row_steps_call(step: Callable, row_offsets: jax.Array, operands: Sequence[jax.Array],
                   out: jax.Array | jax.ShapeDtypeStruct, *, block: int, name: str,
                   interpret: bool) -> jax.Array:
  """One Pallas program a row of ``row_offsets`` (``[R + 1]``), each walking its row's positions
  ``block`` at a time: ``step(row, positions, valid, refs, out_ref)`` for every step
  (``positions`` ``[block]`` int32, ``valid`` the ones before the row's end, ``refs`` the refs of
  ``operands``, whole arrays).

  ``out`` is either an array, updated in place (aliased to the result: what no step writes keeps
  its value), or a ``jax.ShapeDtypeStruct`` ``[size]``: a new array written whole, the positions
  from ``row_offsets[R]`` on set to zero by one more program (no zero-filled array to copy in
  first)."""
  fresh = isinstance(out, jax.ShapeDtypeStruct)
  num_rows = row_offsets.shape[0] - 1
  size = out.shape[0]

  def kernel(offsets_ref, *refs):
    out_ref = refs[-1]
    operand_refs = refs[:len(operands)]
    row = pl.program_id(0)
    lanes = jnp.arange(block, dtype=jnp.int32)

    def rows_program():
      start, end = offsets_ref[row], offsets_ref[row + 1]

      def body(i, carry):
        positions = start + i * block + lanes
        step(row, positions, positions < end, operand_refs, out_ref)
        return carry

      jax.lax.fori_loop(0, (end - start + block - 1) // block, body, 0)

    if not fresh:
      rows_program()
      return
    pl.when(row < num_rows)(rows_program)

    @pl.when(row == num_rows)
    def _zero_tail():
      tail = offsets_ref[num_rows]
      zeros = jnp.zeros((block,), out_ref.dtype)

      def body(i, carry):
        # Lanes past the end all store 0 to the last position (inside the tail whenever the loop
        # runs): no masked store, which interpret mode runs as a read-modify-write.
        plt.store(out_ref.at[jnp.minimum(tail + i * block + lanes, size - 1)], zeros)
        return carry

      jax.lax.fori_loop(0, (size - tail + block - 1) // block, body, 0)

  extra = (out,) if not fresh else ()
  return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct(out.shape, out.dtype),
      grid=(num_rows + (1 if fresh else 0),),
      in_specs=[pl.no_block_spec] * (len(operands) + 1 + len(extra)),
      input_output_aliases={} if fresh else {len(operands) + 1: 0},
      compiler_params=plt.CompilerParams(num_warps=max(1, min(4, block // 32)), num_stages=1),
      interpret=interpret,
      name=name,
  )(row_offsets, *operands, *extra)
