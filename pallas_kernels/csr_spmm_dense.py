"""CSR SpMM through dense rows: A's rows expanded to dense, then ``A @ B`` on the tensor cores.

Where A is dense enough and the product wide enough (on an H100: float32 4096 x 4096 at N = 1024 up
to 80% sparsity, 1.2-2.7x faster than the row kernel; bfloat16 MiniLM layers at N = 4096, 2-6x), the
row kernel (``csr_spmm``), which gathers a row of B per stored entry on the CUDA cores, costs more
than the whole dense product on the tensor cores. This path writes A's stored values into zeroed
dense rows (one program a row: its column indices and values in steps of ``expand_block``, scattered
into the row), then multiplies them with B through ``dense_product.product_nt`` (A @ B = A @
(B.T).T; float32 as three TF32 passes, about float32's accuracy). A's dense rows are built and
multiplied in chunks of at most ``chunk_bytes``, so memory stays bounded for any M.

The expansion stores each value at its column: a row's column indices must be distinct, which a
CSR matrix validated when it was built guarantees (strictly increasing within rows); with a
repeated column one of the values is kept, where the row kernel would add them.

Triton constraints: those of ``dense_product``; ``expand_block`` a power of two.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common, _rows, dense_product


@dataclasses.dataclass(frozen=True)
class DenseSpmmConfig:
  """The product's launch, the stored entries the expansion reads per step, and the most bytes
  of A's dense rows built at once (at least ``product.block_m`` rows)."""

  product: dense_product.ProductConfig = dense_product.ProductConfig()
  expand_block: int = 128
  chunk_bytes: int = 256 << 20

  def __post_init__(self):
    if not _common.is_power_of_two(self.expand_block):
      raise ValueError(f"DenseSpmmConfig.expand_block must be a power of two, got "
                       f"{self.expand_block}")
    if self.chunk_bytes < 1:
      raise ValueError(f"DenseSpmmConfig.chunk_bytes must be >= 1, got {self.chunk_bytes}")

  def chunk_rows(self, num_rows: int, num_cols: int, itemsize: int) -> int:
    """Rows of A expanded per chunk: a multiple of the product's ``block_m`` within
    ``chunk_bytes``, no more than the rows rounded up to it."""
    return dense_product.rows_per_chunk(num_rows, itemsize * num_cols, self.product.block_m,
                                        self.chunk_bytes)


def choose_config(num_cols: int, dtype, mean_row: float) -> DenseSpmmConfig:
  """The product's launch for K = ``num_cols`` (``dense_product.choose_config``) and an
  expansion step of the mean row rounded up to a power of two, within [32, 256]."""
  return DenseSpmmConfig(
      product=dense_product.choose_config(num_cols, dtype),
      expand_block=min(256, max(32, pl.next_power_of_2(max(int(mean_row), 1)))))


# Which SpMM kernel a call should take (``prefers_dense``): time models of both paths, constants
# from an H100, 2026-11-26 (experiments/results/h100-2026-11-26-spmm-dense/).
# The row kernel: gathered rows of B, nnz x N x itemsize bytes at about 12 TB/s (4096 x 4096
# float32: 15.5 TB/s at density 0.5, N = 1024; 9.8 at N = 32).
ROW_KERNEL_BYTES_PER_US = 12e6
# The dense path: A's rows zeroed and filled (M x K x itemsize bytes written, about 10 us per
# million entries scattered), B transposed, the product (``dense_product.modeled_us``), its
# float32 result written and cast.
WRITE_BYTES_PER_US = 2.0e6
EXPAND_US_PER_ENTRY = 1e-5
# Programs of one product tile row: a launch with fewer than this many output tiles leaves SMs
# idle; the model scales the product's rate down by the fraction of them it fills.
FULL_LAUNCH_TILES = 132
# The dense path is taken when modeled at most this fraction of the row kernel's time: both
# models are within ~10% at the crossing (4096 x 4096, density 0.5, N = 128: modeled 306 vs 358
# us, measured 354 vs 322). With it the pick is the faster path in all 21 cases of
# experiments/results/h100-2026-11-26-spmm-dense/ (without it, 20).
DENSE_MARGIN = 0.85


def prefers_dense(num_rows: int, num_cols: int, n: int, nse: int, dtype) -> bool:
  """Whether the dense path is expected to beat the row kernel (``csr_spmm``) for an
  ``[num_rows, num_cols]`` matrix with ``nse`` stored positions times ``[num_cols, n]`` (static
  shapes only; ``nse`` counts padding too)."""
  if nse == 0 or n == 0 or num_rows == 0 or num_cols == 0:
    return False
  itemsize = jnp.dtype(dtype).itemsize
  product = dense_product.choose_config(num_cols, dtype)
  tiles = pl.cdiv(num_rows, product.block_m) * pl.cdiv(n, product.block_n)
  fill = min(1.0, tiles / FULL_LAUNCH_TILES)
  dense_us = (dense_product.modeled_us(num_rows, n, num_cols, dtype) / fill
              + (num_rows * num_cols * itemsize + num_cols * n * itemsize * 2
                 + num_rows * n * (4 + itemsize)) / WRITE_BYTES_PER_US
              + nse * EXPAND_US_PER_ENTRY)
  rows_us = nse * n * itemsize / ROW_KERNEL_BYTES_PER_US
  return dense_us < DENSE_MARGIN * rows_us


def expand_rows(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array,
                rows: jax.Array, *, num_cols: int, block: int,
                interpret: bool = False) -> jax.Array:
  """``rows`` (``[R, K']``, zeros, K' > K = ``num_cols``) with every stored value of the ``R``
  rows of ``row_offsets`` (``[R + 1]``, positions into ``data``) written at its column (updated
  in place). Masked lanes of a step address column K, which stays 0: the Pallas interpreter
  runs a masked store as a read-modify-write of every lane, so a masked lane sharing a valid
  lane's address could undo its write."""
  if rows.shape[1] <= num_cols:
    raise ValueError(f"rows must have more than K = {num_cols} columns (a scratch column), got "
                     f"{rows.shape[1]}")

  def step(row, positions, valid, refs, out_ref):
    cols_ref, data_ref = refs
    # Clamped: a traced, unvalidated column index cannot write outside the row's K columns.
    cols = jnp.clip(plt.load(cols_ref.at[positions], mask=valid, other=0), 0, num_cols - 1)
    cols = jnp.where(valid, cols, num_cols)
    values = plt.load(data_ref.at[positions], mask=valid, other=0)
    plt.store(out_ref.at[row, cols], values.astype(out_ref.dtype), mask=valid)

  return _rows.row_steps_call(step, row_offsets, (col_indices, data), rows, block=block,
                              name="jsparse_spmm_expand_rows", interpret=interpret)


@functools.partial(jax.jit, static_argnames=("num_rows", "config", "interpret"))
def kernel_fn(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, dense: jax.Array,
              *, num_rows: int, config: DenseSpmmConfig | None = None,
              interpret: bool = False) -> jax.Array:
  """``A @ B`` for a CSR matrix A ``[M, K]`` through its dense rows (same contract as
  ``csr_spmm.kernel_fn``).

  Args:
    data: ``[nse]`` float32, bfloat16 or float16; positions ``>= row_offsets[M]`` are padding.
    col_indices: ``[nse]`` int32, the column (in ``[0, K)``) of each stored value.
    row_offsets: ``[M + 1]`` int32 CSR row offsets.
    dense: B ``[K, N]`` of data's dtype.
    num_rows: ``M``.
    config: launch parameters; ``choose_config`` when None.
    interpret: run in Pallas interpret mode (any platform).

  Returns:
    ``[M, N]`` in data's dtype, accumulated in float32.
  """
  _rows.check_csr_operands(data, col_indices, row_offsets, num_rows)
  _rows.check_value_dtype("data", data)
  if dense.ndim != 2 or dense.dtype != data.dtype:
    raise ValueError(f"dense must be [K, N] of data's dtype {data.dtype}, got {dense.dtype} "
                     f"{tuple(dense.shape)}")
  num_cols, n = dense.shape
  nse = data.shape[0]
  if num_rows == 0 or nse == 0 or n == 0 or num_cols == 0:
    return jnp.zeros((num_rows, n), data.dtype)
  config = config or choose_config(num_cols, data.dtype, nse / num_rows)
  # A's rows get a zero scratch column (expand_rows) and are padded to the product's inner step
  # here, where they are built, rather than copied by the product; B.T the same.
  padded_cols = pl.cdiv(num_cols + 1, config.product.block_d) * config.product.block_d
  b_rows = jnp.pad(dense.T, ((0, 0), (0, padded_cols - num_cols)))  # [N, K']
  chunk = config.chunk_rows(num_rows, padded_cols, data.dtype.itemsize)
  outputs = []
  for first in range(0, num_rows, chunk):  # static: shapes
    last = min(first + chunk, num_rows)
    rows = expand_rows(data, col_indices, row_offsets[first:last + 1],
                       jnp.zeros((last - first, padded_cols), data.dtype), num_cols=num_cols,
                       block=config.expand_block, interpret=interpret)
    product = dense_product.product_nt(rows, b_rows, config=config.product, interpret=interpret)
    outputs.append(product[:last - first, :n].astype(data.dtype))
  return outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs)
