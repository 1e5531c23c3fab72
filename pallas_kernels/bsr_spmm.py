"""BSR SpMM on the tensor cores: ``A @ B`` for A in block-sparse rows, only stored blocks loaded.

One program computes a [bm, block_n] tile of the output: it walks the stored blocks of its block
row (``row_offsets[i]:row_offsets[i + 1]``), loads each [bm, bk] block and the matching [bk,
block_n] rows of B, and accumulates their ``dot`` in float32. Empty block rows write zeros. Work
and bytes are proportional to the number of stored blocks, so time falls with block density.

Triton constraints (checked by ``gpu_supported``): bm, bk and block_n powers of two >= 16.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common


@dataclasses.dataclass(frozen=True)
class BsrSpmmConfig:
  """Launch parameters: columns of B per program, Triton warps and pipeline stages."""

  block_n: int = 64
  num_warps: int = 4
  num_stages: int = 2


def gpu_supported(block_shape: tuple[int, int], config: BsrSpmmConfig) -> bool | str:
  """True when the Triton backend can compile this call, else the reason why not."""
  return _common.check_dot_tiles(bm=block_shape[0], bk=block_shape[1], block_n=config.block_n)


def kernel_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, dense: jax.Array,
              *, shape: tuple[int, int], config: BsrSpmmConfig = BsrSpmmConfig(),
              interpret: bool = False) -> jax.Array:
  """``A @ B`` for a BSR matrix A.

  Args:
    data: [nse, bm, bk] block values (float16, bfloat16 or float32).
    col_indices: int32/int64 [nse] block column of each block.
    row_offsets: int32/int64 [M / bm + 1]; blocks at or past ``row_offsets[-1]`` are padding.
    dense: [K, N] of data's dtype.
    shape: (M, K) of A.
    config: launch parameters.
    interpret: run in the Pallas interpreter (any platform).

  Returns:
    [M, N] of data's dtype, accumulated in float32.
  """
  _, bm, bk = data.shape
  num_rows = shape[0]
  num_n = dense.shape[1]
  block_n = config.block_n
  if data.shape[0] == 0:
    return jnp.zeros((num_rows, num_n), data.dtype)
  padded = _common.pad_columns(dense, block_n)
  precision = _common.dot_precision(data.dtype)

  def kernel(row_offsets_ref, col_indices_ref, data_ref, dense_ref, out_ref):
    block_row, col_tile = pl.program_id(0), pl.program_id(1)
    start, end = row_offsets_ref[block_row], row_offsets_ref[block_row + 1]

    def accumulate(position, acc):
      block_col = col_indices_ref[position]
      block = data_ref[position]
      rhs = dense_ref[pl.ds(block_col * bk, bk), pl.ds(col_tile * block_n, block_n)]
      return acc + jnp.dot(block, rhs, precision=precision, preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(start, end, accumulate, jnp.zeros((bm, block_n), jnp.float32))
    out_ref[...] = acc.astype(out_ref.dtype)

  whole = pl.no_block_spec
  out = pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((num_rows, padded.shape[1]), data.dtype),
      grid=(num_rows // bm, padded.shape[1] // block_n),
      in_specs=[whole, whole, whole, whole],
      out_specs=pl.BlockSpec((bm, block_n), lambda i, j: (i, j)),
      compiler_params=plt.CompilerParams(num_warps=config.num_warps,
                                         num_stages=config.num_stages),
      interpret=interpret,
      name="jsparse_bsr_spmm",
  )(row_offsets, col_indices, data, padded)
  return out[:, :num_n]


def reference_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array,
                 dense: jax.Array, *, shape: tuple[int, int]) -> jax.Array:
  """The same product in plain ``jax.numpy`` (float32 accumulation), through the dense matrix."""
  _, bm, bk = data.shape
  block_rows, block_cols = shape[0] // bm, shape[1] // bk
  nse = data.shape[0]
  rows = jnp.searchsorted(row_offsets, jnp.arange(nse, dtype=row_offsets.dtype), side="right") - 1
  blocks = jnp.zeros((block_rows, block_cols, bm, bk), jnp.float32)
  blocks = blocks.at[rows, col_indices].add(data.astype(jnp.float32), mode="drop")
  matrix = blocks.transpose(0, 2, 1, 3).reshape(shape)
  out = jnp.dot(matrix, dense.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST)
  return out.astype(data.dtype)
