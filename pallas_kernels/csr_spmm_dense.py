"""CSR SpMM through dense rows: A's rows expanded to dense, then ``A @ B`` by XLA's dense product.

Where A is dense enough and the product wide enough (on an H100: float32 4096 x 4096 at N = 1024 up
to 80% sparsity; bfloat16 MiniLM layers at N = 4096), the row kernel (``csr_spmm``), which gathers a
row of B per stored entry on the CUDA cores, costs more than the whole dense product on the tensor
cores. This path writes A's rows dense (``dense_rows``: one Pallas program a row, which stores
zeros over its row, then each stored entry at its column), then multiplies them with B by XLA's dot
(``dense_product.xla_product``: float32 at ``Precision.HIGHEST``). XLA's dot, unlike a Pallas
product, takes B and the result in whatever layout its neighbours leave them: with a Pallas product
(which needs row-major operands) the transposes around ``jsparse.nn``'s sparse linear layers
(``spmm(W, x.T).T``) became slow transpose fusions inside MiniLM's jitted forward pass, which took
twice as long as with the row kernel (H100, 2026-11-26;
experiments/results/h100-2026-11-26-prefill-expand/). A's dense rows are built and multiplied in
chunks of at most ``chunk_bytes``, so memory stays bounded for any M.

The expansion stores each value at its column: a row's column indices must be distinct, which a
CSR matrix validated when it was built guarantees (strictly increasing within rows); with a
repeated column one of the values is kept, where the row kernel would add them.

Triton constraints: ``block_cols`` and ``block_nnz`` powers of two.
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
  """The expansion's zeros a store (``block_cols``) and entries a step (``block_nnz``), both
  powers of two, its Triton warps, and the most bytes of A's dense rows built at once."""

  block_cols: int = 256
  block_nnz: int = 128
  num_warps: int = 4
  chunk_bytes: int = 256 << 20

  def __post_init__(self):
    for name in ("block_cols", "block_nnz"):
      if not _common.is_power_of_two(getattr(self, name)):
        raise ValueError(f"DenseSpmmConfig.{name} must be a power of two, got "
                         f"{getattr(self, name)}")
    if self.chunk_bytes < 1:
      raise ValueError(f"DenseSpmmConfig.chunk_bytes must be >= 1, got {self.chunk_bytes}")

  def padded_cols(self, num_cols: int) -> int:
    """K rounded up to ``block_cols``: the width of the dense rows."""
    return pl.cdiv(num_cols, self.block_cols) * self.block_cols

  def chunk_rows(self, num_rows: int, row_bytes: int) -> int:
    """Rows of A expanded per chunk: within ``chunk_bytes`` (at least 1), at most ``num_rows``."""
    return dense_product.rows_per_chunk(num_rows, row_bytes, 1, self.chunk_bytes)


def choose_config(num_cols: int) -> DenseSpmmConfig:
  """Zeros 128 a store where K is a multiple of 128 but not of 256 (no padding: MiniLM's 384),
  else 256 (64 for K <= 64); 128 entries a step."""
  if num_cols <= 64:
    return DenseSpmmConfig(block_cols=64)
  return DenseSpmmConfig(block_cols=128 if num_cols % 256 == 128 else 256)


# Which SpMM kernel a call should take (``prefers_dense``): time models of both paths, constants
# from an H100, 2026-11-26 (experiments/results/h100-2026-11-26-prefill-expand/).
# The row kernel: about 3 million products (stored entries x N) a microsecond, float32 and
# bfloat16 alike (1.7-3.9 measured on its own), plus a fixed cost. Device time per call on an
# H100 (experiments/results/h100-2026-11-26-kernel-time/spmm-path/, 24 shapes at N = 128): the op
# alone pays 1.9-3.3 us beyond its products, hence 4.0. On that probe's 32 cases the choice cost
# 433.8 us summed (the faster path each time: 429.1; 455.1 with the earlier 8.0, set when the row
# path still computed its schedule on every call). A layer's call ``spmm(W, x.T).T`` pays 2.4-2.9
# us more on the row path (x.T and the result's transpose materialised; the dense path folds
# them into its dot): the caller says so (``row_extra_us``, from the layout's
# ``operand_transposed`` hint in ``jsparse._gpu.csr``).
ROW_KERNEL_PRODUCTS_PER_US = 3e6
ROW_FIXED_US = 4.0
# The dense path: the dense rows written (M x K bytes) and their entries stored (4096 x 4096
# float32: ~50 us at s = 0.9, ~120 at s = 0.5), the product (``dense_product.modeled_us``), and a
# fixed cost (two launches). Modeled 214 / 179 us for 4096 x 4096 float32 at s = 0.5 / 0.7,
# N = 128; measured 219 / 184; MiniLM's layers at 1 x 128 tokens: 6.8-10.1 us.
WRITE_BYTES_PER_US = 2.0e6
EXPAND_US_PER_ENTRY = 1e-5
DENSE_FIXED_US = 5.0
# Below this many columns of B the row kernel always runs: the dense path writes and reads all
# of A's M x K elements, more bytes than the row kernel's whole product when N is small (and not
# measured there).
DENSE_MIN_N = 64
# The dense path is taken when modeled at most this fraction of the row kernel's time.
DENSE_MARGIN = 0.85


def prefers_dense(num_rows: int, num_cols: int, n: int, nse: int, dtype,
                  row_extra_us: float = 0.0) -> bool:
  """Whether the dense path is expected to beat the row kernel (``csr_spmm``) for an
  ``[num_rows, num_cols]`` matrix with ``nse`` stored positions times ``[num_cols, n]`` (static
  shapes only; ``nse`` counts padding too); ``row_extra_us``: what the call adds to the row
  path only (e.g. transposes of its operand and result that the dense path folds into its dot)."""
  if nse == 0 or n < DENSE_MIN_N or num_rows == 0 or num_cols == 0:
    return False
  itemsize = jnp.dtype(dtype).itemsize
  dense_us = (dense_product.modeled_us(num_rows, n, num_cols, dtype)
              + num_rows * num_cols * itemsize / WRITE_BYTES_PER_US + nse * EXPAND_US_PER_ENTRY
              + DENSE_FIXED_US)
  rows_us = nse * n / ROW_KERNEL_PRODUCTS_PER_US + ROW_FIXED_US + row_extra_us
  return dense_us < DENSE_MARGIN * rows_us


def dense_rows(data: jax.Array, col_indices: jax.Array, row_offsets: jax.Array, *,
               num_cols: int, config: DenseSpmmConfig = DenseSpmmConfig(),
               interpret: bool = False) -> jax.Array:
  """The ``R`` rows of ``row_offsets`` (``[R + 1]``, positions into ``data`` and
  ``col_indices``) as dense rows ``[R, K']`` of data's dtype, K = ``num_cols`` rounded up to
  ``config.block_cols`` (the extra columns 0).

  One program a row, in two passes: zeros over the row (``block_cols`` a store), a barrier, then
  the row's entries (``block_nnz`` a step), each stored at its column. Lanes past the row's end
  repeat its last entry (the same value to the same address), so no store is masked: the Pallas
  interpreter runs a masked store as a read-modify-write of every lane, which could undo a valid
  lane's write at a shared address. Column indices are clamped to [0, K): an unvalidated index
  cannot write outside its row.
  """
  num_rows = row_offsets.shape[0] - 1
  _rows.check_csr_operands(data, col_indices, row_offsets, num_rows)
  _rows.check_value_dtype("data", data)
  if num_cols < 1:
    raise ValueError(f"num_cols must be >= 1, got {num_cols}")
  block, block_nnz = config.block_cols, config.block_nnz
  padded_cols = config.padded_cols(num_cols)

  def kernel(offsets_ref, cols_ref, data_ref, out_ref):
    row = pl.program_id(0)
    start, end = offsets_ref[row], offsets_ref[row + 1]
    zeros = jnp.zeros((block,), out_ref.dtype)

    def zero_step(index, carry):
      out_ref[row, pl.ds(index * block, block)] = zeros
      return carry

    jax.lax.fori_loop(0, padded_cols // block, zero_step, 0)
    if not interpret:  # (the interpreter runs each store whole, in order, and has no barrier)
      plt.debug_barrier()  # the zeros are stored before any entry (other threads write both)
    lanes = jnp.arange(block_nnz, dtype=jnp.int32)

    def entry_step(index, carry):
      positions = jnp.minimum(start + index * block_nnz + lanes, end - 1)
      cols = jnp.clip(cols_ref[positions], 0, num_cols - 1)
      out_ref[row, cols] = data_ref[positions].astype(out_ref.dtype)
      return carry

    jax.lax.fori_loop(0, (end - start + block_nnz - 1) // block_nnz, entry_step, 0)

  return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((num_rows, padded_cols), data.dtype),
      grid=(num_rows,),
      compiler_params=plt.CompilerParams(num_warps=config.num_warps, num_stages=1),
      interpret=interpret,
      name="jsparse_csr_dense_rows",
  )(row_offsets, col_indices, data)


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
  _rows.check_spmm_operands(data, col_indices, row_offsets, dense, num_rows,
                            dense_name="dense")
  num_cols, n = dense.shape
  nse = data.shape[0]
  if num_rows == 0 or nse == 0 or n == 0 or num_cols == 0:
    return jnp.zeros((num_rows, n), data.dtype)
  config = config or choose_config(num_cols)
  padded_cols = config.padded_cols(num_cols)
  b = _common.pad_rows(dense, padded_cols)  # zero rows meet the dense rows' extra columns
  chunk = config.chunk_rows(num_rows, padded_cols * data.dtype.itemsize)
  outputs = []
  for first in range(0, num_rows, chunk):  # static: shapes
    last = min(first + chunk, num_rows)
    rows = dense_rows(data, col_indices, row_offsets[first:last + 1], num_cols=num_cols,
                      config=config, interpret=interpret)
    outputs.append(dense_product.xla_product(rows, b))
  return outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs)
