"""CSR SDDMM through dense tiles: ``S = X @ Y.T`` on the tensor cores, then S at the pattern.

For patterns dense enough (or inner dimensions long enough) that the row kernel (``csr_sddmm``),
which gathers one row of Y per stored entry, is bound by those gathers (nnz x D x 4 bytes through
L2: 34 GB at 4096 x 4096, density 0.5, D = 1024), the product of every row of X with every row of Y
costs less on the tensor cores than the gathers do. S is computed by XLA's dot
(``dense_product.xla_product_nt``: float32 as three TF32 passes, about float32's accuracy; the
Pallas ``product_nt`` took 1.3-3.5x its time, except 0.91x at 4096 x 4096 x 32) and stored; the stored entries
are then read from S by a second kernel, one program a row: its column indices in chunks, S's row at
those columns, stored to the row's positions (``nnz x 8`` bytes plus S's sectors; a ``searchsorted``
of every position's row and a 2-D XLA gather in its place took 1.6 ms at 4096 x 4096, density 0.5,
on an H100). S is float32 and is computed and sampled in chunks of rows of at most
``DenseSddmmConfig.chunk_bytes`` (256 MiB by default), so memory stays bounded for any M.

Triton constraints: ``sample_block`` a power of two (checked by ``DenseSddmmConfig``).
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
class DenseSddmmConfig:
  """The stored entries the sampling kernel reads per step (``sample_block``), and the most
  bytes of S computed at once (``chunk_bytes``: rows of S are computed and sampled in chunks of a
  multiple of ``chunk_row_multiple`` rows, at least one such multiple)."""

  sample_block: int = 128
  chunk_bytes: int = 256 << 20
  chunk_row_multiple: int = 64

  def __post_init__(self):
    if not _common.is_power_of_two(self.sample_block):
      raise ValueError(f"DenseSddmmConfig.sample_block must be a power of two, got "
                       f"{self.sample_block}")
    if self.chunk_bytes < 1:
      raise ValueError(f"DenseSddmmConfig.chunk_bytes must be >= 1, got {self.chunk_bytes}")
    if self.chunk_row_multiple < 1:
      raise ValueError(f"DenseSddmmConfig.chunk_row_multiple must be >= 1, got "
                       f"{self.chunk_row_multiple}")

  def chunk_rows(self, num_rows: int, num_cols: int) -> int:
    """Rows of S per chunk (``dense_product.rows_per_chunk`` of S's float32 rows)."""
    return dense_product.rows_per_chunk(num_rows, 4 * max(num_cols, 1), self.chunk_row_multiple,
                                        self.chunk_bytes)


def choose_config(mean_row: float = 128.0) -> DenseSddmmConfig:
  """The sampling step: the mean stored entries of a row rounded up to a power of two, within
  [32, 256] (S's product is XLA's, so nothing else is chosen)."""
  sample_block = min(256, max(32, pl.next_power_of_2(max(int(mean_row), 1))))
  return DenseSddmmConfig(sample_block=sample_block)


# Which SDDMM kernel a call should take (``prefers_dense``): time models of the two paths with
# constants fitted to an H100, 2026-11-26 (experiments/results/h100-2026-11-26-sddmm-dense/,
# 4096 x 4096 uniform random, float32, D in {32, 128, 1024}, density 0.01-0.5; the models are
# within about 25% of the measured times there and pick the faster path in all 18 cases, the
# near-tie at density 0.3, D = 32 included: rows 104, dense 106 us).
# The row kernel streams the gathered rows of Y: nnz x D x itemsize bytes at about 6.5 TB/s.
ROW_KERNEL_BYTES_PER_US = 6.5e6
# The dense path: the product (``dense_product.modeled_us``), S written (4 bytes an element,
# about 2 TB/s with the product's own reads), then about 10 us per million stored entries
# sampled. For bfloat16 (round3-bf16/) the models pick the faster path in 16 of the 18 cases;
# the other two cost 9% (density 0.5, D = 32) and 4% (density 0.02, D = 1024).
PRODUCT_BYTES_PER_US = 2.0e6
SAMPLE_US_PER_ENTRY = 1e-5
# S is materialised a chunk of rows at a time; the dense path is not taken where even the
# smallest chunk (``DenseSddmmConfig.chunk_row_multiple`` rows of float32) would exceed this.
MAX_TILE_ROW_BYTES = 256 << 20


def prefers_dense(num_rows: int, num_cols: int, inner: int, nse: int, dtype) -> bool:
  """Whether the dense-tile path is expected to beat the row kernel (``csr_sddmm``) for an
  ``[num_rows, num_cols]`` pattern with ``nse`` stored positions and inner dimension ``inner``
  (static shapes only; ``nse`` counts padding too), and a tile row of S fits
  ``MAX_TILE_ROW_BYTES``. The dense path's product is modeled at ``dense_product.modeled_us``'s
  rates (those of the Pallas product it used until 2026-11-26; XLA's 3xTF32 dot is up to
  3.5x faster, so the model leans to the row kernel near the crossover)."""
  elements = num_rows * num_cols
  tile_rows = DenseSddmmConfig().chunk_row_multiple
  if tile_rows * num_cols * 4 > MAX_TILE_ROW_BYTES or nse == 0 or inner == 0:
    return False
  dense_us = (dense_product.modeled_us(num_rows, num_cols, inner, dtype)
              + 4 * elements / PRODUCT_BYTES_PER_US + nse * SAMPLE_US_PER_ENTRY)
  rows_us = nse * inner * jnp.dtype(dtype).itemsize / ROW_KERNEL_BYTES_PER_US
  return dense_us < rows_us


def sample(product: jax.Array, col_indices: jax.Array, row_offsets: jax.Array,
           values: jax.Array | jax.ShapeDtypeStruct, *, block: int,
           interpret: bool = False) -> jax.Array:
  """``values`` with ``values[pos] = product[i, col_indices[pos]]`` for every stored position of
  each row ``i`` of ``row_offsets`` (``[R + 1]``, positions into ``values``; R = the product's
  rows that are sampled), cast to ``values``' dtype. An array ``values`` keeps its other
  positions (updated in place); a ``jax.ShapeDtypeStruct`` gives a new array whose positions from
  ``row_offsets[R]`` on are 0 (``_rows.row_steps_call``).

  One program a row walks its positions ``block`` at a time: the column indices (contiguous),
  the product's row at those columns (a gather within one row of S), the values (contiguous).
  """
  last_column = product.shape[1] - 1

  def step(row, positions, valid, refs, out_ref):
    cols_ref, product_ref = refs
    # Clamped: a traced, unvalidated column index cannot read outside S.
    cols = jnp.clip(plt.load(cols_ref.at[positions], mask=valid, other=0), 0, last_column)
    sampled = plt.load(product_ref.at[row, cols], mask=valid, other=0)
    plt.store(out_ref.at[positions], sampled.astype(out_ref.dtype), mask=valid)

  return _rows.row_steps_call(step, row_offsets, (col_indices, product), values, block=block,
                              name="jsparse_sddmm_sample", interpret=interpret)


@functools.partial(jax.jit, static_argnames=("num_rows", "config", "interpret"))
def kernel_fn(col_indices: jax.Array, row_offsets: jax.Array, x: jax.Array, y: jax.Array, *,
              num_rows: int, config: DenseSddmmConfig | None = None,
              interpret: bool = False) -> jax.Array:
  """Stored values ``x[i] . y[j]`` at every stored ``(i, j)`` of a CSR pattern ``[M, N]``, from
  the dense product (same contract as ``csr_sddmm.kernel_fn``).

  Args:
    col_indices: ``[nse]`` int32, the column (in ``[0, N)``) of each stored entry.
    row_offsets: ``[M + 1]`` int32 CSR row offsets; positions ``>= row_offsets[M]`` are padding.
    x: ``[M, D]`` float32, bfloat16 or float16.
    y: ``[N, D]``, the same dtype as ``x``.
    num_rows: ``M``.
    config: tile sizes; ``choose_config`` when None.
    interpret: run in Pallas interpret mode (any platform).

  Returns:
    ``[nse]`` in ``x``'s dtype (accumulated in float32); 0 at padding positions.
  """
  _rows.check_sddmm_operands(col_indices, row_offsets, x, y, num_rows)
  nse, inner = col_indices.shape[0], x.shape[1]
  if num_rows == 0 or nse == 0 or inner == 0 or y.shape[0] == 0:
    return jnp.zeros((nse,), x.dtype)
  config = config or choose_config(nse / num_rows)
  chunk = config.chunk_rows(num_rows, y.shape[0])
  # One chunk (the usual case): the sampling writes every position itself, padding included,
  # into a new array. Several: each chunk updates the array in place, and padding keeps these
  # zeros. (In a timed loop on an H100, the zeros were a 24 us copy a call at 4096 x 4096,
  # density 0.5.)
  values = (jax.ShapeDtypeStruct((nse,), x.dtype) if chunk >= num_rows
            else jnp.zeros((nse,), x.dtype))
  for first in range(0, num_rows, chunk):  # static: shapes
    last = min(first + chunk, num_rows)
    product = dense_product.xla_product_nt(x[first:last], y, interpret=interpret)
    values = sample(product, col_indices, row_offsets[first:last + 1], values,
                    block=config.sample_block, interpret=interpret)
  return values
