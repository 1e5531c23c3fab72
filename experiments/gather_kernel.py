"""The roofline's gather probe: a Pallas (Triton) kernel that only gathers rows and sums them.

A CSR kernel reads a row of the dense operand for every stored entry. How fast rows can be
gathered through the caches bounds it, whatever its DRAM traffic. XLA's own gather (a gather
fused into a sum) reached 1.3 TB/s on an H100 (2026-11-26), below the 2.3 TB/s DRAM copy
rate, so it says nothing about the hardware; this kernel is what the CSR SpMM does with its
multiplies removed: each one-warp program loads ``step`` row indices at a time, gathers those
rows (each a contiguous, vectorized load) and adds them into a ``[step, width]`` float32 tile.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu


@functools.partial(jax.jit, static_argnames=("rows_per_program", "step", "interpret"))
def gather_sums(table: jax.Array, rows: jax.Array, *, rows_per_program: int = 512,
                step: int = 16, interpret: bool = False) -> jax.Array:
  """``out[p] = table[rows[p * R : (p + 1) * R]].sum(0)`` with R = ``rows_per_program``.

  Args:
    table: ``[T, W]`` float32, W a power of two.
    rows: ``[count]`` int32 row indices in ``[0, T)``, count a multiple of R.
    rows_per_program: R, a multiple of ``step``.
    step: rows gathered per load (a power of two).
    interpret: run in Pallas interpret mode (any platform).

  Returns:
    ``[count / R, W]`` float32.
  """
  count, width = rows.shape[0], table.shape[1]
  if count % rows_per_program or rows_per_program % step:
    raise ValueError(f"rows ({count}) must be a multiple of rows_per_program "
                     f"({rows_per_program}), itself a multiple of step ({step})")

  def kernel(rows_ref, table_ref, out_ref):
    first = pl.program_id(0) * rows_per_program
    columns = jnp.arange(width, dtype=jnp.int32)

    def body(index, acc):
      indices = plgpu.load(rows_ref.at[pl.ds(first + index * step, step)])
      return acc + plgpu.load(table_ref.at[indices[:, None], columns[None, :]])

    acc = jax.lax.fori_loop(jnp.int32(0), jnp.int32(rows_per_program // step), body,
                            jnp.zeros((step, width), jnp.float32))
    plgpu.store(out_ref.at[pl.program_id(0), pl.ds(jnp.int32(0), width)], jnp.sum(acc, axis=0))

  return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((count // rows_per_program, width), jnp.float32),
      grid=(count // rows_per_program,),
      compiler_params=plgpu.CompilerParams(num_warps=1, num_stages=1),
      interpret=interpret,
  )(rows, table)
