"""Dense products on the tensor cores behind the CSR kernels' dense paths.

Where a pattern is dense enough, computing every product on the tensor cores costs less than
gathering rows per stored entry on the CUDA cores: the SDDMM dense path (``csr_sddmm_dense``:
S = X @ Y.T by ``xla_product_nt``, then sampled at the pattern) and the SpMM dense path
(``csr_spmm_dense``: A expanded to dense rows, then ``xla_product``). Both are XLA's dot
(cuBLAS): it was faster than the Pallas ``product_nt`` below on every shape measured but one
(float32 4096 x 4096 x 32: 43.2 us against 39.4), and inside
a model XLA folds transposes into it. ``product_nt`` (one program a ``[block_m, block_n]`` tile
over the inner dimension in ``block_d`` steps) stays as the probes' Pallas baseline; the
library no longer calls it.

float32 X and Y multiply as three TF32 products (``DotAlgorithmPreset.TF32_TF32_F32_X3``: each
operand split into a TF32 high part and a TF32 remainder, the remainder-times-remainder term
dropped), the split CUTLASS and cuBLAS use to emulate float32 on tensor cores: relative error
about 1e-6 of |x| . |y| where one TF32 pass (Triton's float32 default) gives about 1e-3.
(Splitting X and Y once in XLA and issuing three plain TF32 products of the parts was no faster
on an H100, 0.95-1.2x the time, and is not kept.) bfloat16/float16 multiply natively with float32
accumulation. In interpret mode float32 multiplies at ``Precision.HIGHEST`` (XLA's CPU backend
has no TF32).

Triton constraints (``gpu_supported``): tile sizes powers of two >= 16.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plt

from pallas_kernels import _common

FLOAT32_ON_TENSOR_CORES = jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3


@dataclasses.dataclass(frozen=True)
class ProductConfig:
  """Output tile per program (``block_m`` rows of X by ``block_n`` rows of Y), the inner step
  ``block_d``, and Triton launch parameters."""

  block_m: int = 128
  block_n: int = 128
  block_d: int = 32
  num_warps: int = 4
  num_stages: int = 4

  def __post_init__(self):
    for name in ("block_m", "block_n", "block_d"):
      value = getattr(self, name)
      if not _common.is_power_of_two(value):
        raise ValueError(f"ProductConfig.{name} must be a power of two, got {value}")


def gpu_supported(config: ProductConfig) -> bool | str:
  """True when the Triton backend can compile this config, else the reason why not."""
  return _common.check_dot_tiles(block_m=config.block_m, block_n=config.block_n,
                                 block_d=config.block_d)


def choose_config(inner: int, dtype) -> ProductConfig:
  """The launch by dtype, from the product-only sweep on an H100
  (experiments/results/h100-2026-11-26-sddmm-dense/round4-products/, 4096 x 4096, D 128 / 1024):
  float32 (3xTF32) 64 x 128 tiles, steps of 32, 4 warps, 3 stages (113 / 633 us; the 128 x 128,
  8-warp launch took 132.5 / 694.6); 16-bit 128 x 128, steps of 32, 4 warps, 4 stages (42.0 /
  92.9 us; 40.6-53.3 / 99.1-170.3 for the others). The inner step is D rounded up to a power of
  two (>= 16) when D is shorter."""
  block_d = max(16, min(32, pl.next_power_of_2(max(inner, 1))))
  if jnp.dtype(dtype) == jnp.float32:
    return ProductConfig(block_m=64, block_n=128, block_d=block_d, num_warps=4, num_stages=3)
  return ProductConfig(block_m=128, block_n=128, block_d=block_d, num_warps=4, num_stages=4)


# Modeled rates of ``product_nt`` for the dense paths' dispatch rules (H100, 2026-11-26,
# experiments/results/h100-2026-11-26-sddmm-dense/: float32 as 3xTF32, 34 GFLOP in 709 us at
# 4096 x 4096 x 1024 with round 2's tiles, 633 with round 4's; bfloat16 95 us, the output's
# writes included).
FLOAT32_FLOPS_PER_US = 48e6
FLOAT16_FLOPS_PER_US = 500e6


def modeled_us(num_rows: int, num_cols: int, inner: int, dtype) -> float:
  """Modeled time of an ``[num_rows, inner] x [inner, num_cols]`` product in ``dtype`` that
  fills the GPU (multiply-adds at the rates above)."""
  rate = FLOAT32_FLOPS_PER_US if jnp.dtype(dtype).itemsize == 4 else FLOAT16_FLOPS_PER_US
  return 2 * num_rows * num_cols * inner / rate


def rows_per_chunk(num_rows: int, row_bytes: int, block_m: int, chunk_bytes: int) -> int:
  """Rows of a materialised operand or result built at once: a multiple of ``block_m`` within
  ``chunk_bytes`` (at least ``block_m``), no more than ``num_rows`` rounded up to ``block_m``."""
  tiles = max(1, chunk_bytes // (max(row_bytes, 1) * block_m))
  return min(tiles * block_m, pl.cdiv(max(num_rows, 1), block_m) * block_m)


def _precision(dtype, interpret: bool):
  if jnp.dtype(dtype) != jnp.float32:
    return None
  return jax.lax.Precision.HIGHEST if interpret else FLOAT32_ON_TENSOR_CORES


def _check_factors(a: jax.Array, b: jax.Array, a_named: tuple[str, str],
                   b_named: tuple[str, str], *, inner: str, b_inner_axis: int) -> None:
  """Raises ValueError unless ``a`` is 2-D float32/bfloat16/float16 and ``b`` 2-D of its dtype
  whose axis ``b_inner_axis`` matches a's columns (``inner``), naming each by (name, layout)."""
  (a_name, a_layout), (b_name, b_layout) = a_named, b_named
  if a.ndim != 2 or a.dtype not in (jnp.float32, jnp.bfloat16, jnp.float16):
    raise ValueError(f"{a_name} must be {a_layout} float32, bfloat16 or float16, got {a.dtype} "
                     f"{tuple(a.shape)}")
  if b.ndim != 2 or b.shape[b_inner_axis] != a.shape[1] or b.dtype != a.dtype:
    raise ValueError(f"{b_name} must be {b_layout} with {inner} = {a.shape[1]} and {a_name}'s "
                     f"dtype {a.dtype}, got {b.dtype} {tuple(b.shape)}")


def xla_product(a: jax.Array, b: jax.Array) -> jax.Array:
  """``a @ b`` by XLA's dot (cuBLAS on a GPU), float32 accumulation, cast to a's dtype: float32
  operands at ``Precision.HIGHEST``. The dense paths that expand a sparse A use it where XLA is
  free to fold transposes of B and of the result into the product (a Pallas call takes its
  operands row-major).

  Args:
    a: ``[M, K]`` float32, bfloat16 or float16.
    b: ``[K, N]`` of a's dtype.
  """
  _check_factors(a, b, ("a", "[M, K]"), ("b", "[K, N]"), inner="K", b_inner_axis=0)
  return jnp.dot(a, b, precision=_common.dot_precision(a.dtype),
                 preferred_element_type=jnp.float32).astype(a.dtype)


def xla_product_nt(x: jax.Array, y: jax.Array, *, interpret: bool = False) -> jax.Array:
  """``X @ Y.T`` ``[M, N]`` in float32 by XLA's dot (cuBLAS on a GPU): float32 operands as three
  TF32 products (``FLOAT32_ON_TENSOR_CORES``; ``Precision.HIGHEST`` with ``interpret``, as XLA's
  CPU backend has no TF32), 16-bit ones natively, float32 accumulation. The SDDMM dense path's
  product: faster than ``product_nt`` on every measured shape but float32 4096 x 4096 x 32 (43.2
  us against 39.4; H100, 2026-11-26,
  experiments/results/h100-2026-11-26-dlmc-harness/small-launch/: float32 512x512x1024 23.0 us
  against 80.6, 4096x4096x1024 524 against 690; bfloat16 5.0-79.2 against 9.2-99.8), error within
  3.2e-6 of max |S| against float64 (cuBLAS's float32 SGEMM: 1.3e-6).

  Args:
    x: ``[M, D]`` float32, bfloat16 or float16.
    y: ``[N, D]`` of x's dtype.
    interpret: run where TF32 is not available (the CPU).
  """
  _check_factors(x, y, ("x", "[M, D]"), ("y", "[N, D]"), inner="D", b_inner_axis=1)
  return jnp.dot(x, y.T, precision=_precision(x.dtype, interpret),
                 preferred_element_type=jnp.float32)


def product_nt(x: jax.Array, y: jax.Array, *, config: ProductConfig,
               interpret: bool = False) -> jax.Array:
  """``X @ Y.T`` in float32, ``[M', N']`` with M', N' the row counts of X and Y rounded up to the
  tile (the extra rows and columns are products of zero padding).

  Args:
    x: ``[M, D]`` float32, bfloat16 or float16.
    y: ``[N, D]`` of x's dtype.
    config: the launch.
    interpret: run in the Pallas interpreter (any platform).
  """
  _check_factors(x, y, ("x", "[M, D]"), ("y", "[N, D]"), inner="D", b_inner_axis=1)
  block_m, block_n, block_d = config.block_m, config.block_n, config.block_d
  steps = pl.cdiv(x.shape[1], block_d)
  xp = _common.pad_columns(_common.pad_rows(x, pl.cdiv(x.shape[0], block_m) * block_m), block_d)
  yp = _common.pad_columns(_common.pad_rows(y, pl.cdiv(y.shape[0], block_n) * block_n), block_d)
  precision = _precision(x.dtype, interpret)

  def kernel(x_ref, y_ref, out_ref):
    def step(d, acc):
      xs = x_ref[:, pl.ds(d * block_d, block_d)]
      ys = y_ref[:, pl.ds(d * block_d, block_d)]
      return acc + jax.lax.dot_general(xs, ys, (((1,), (1,)), ((), ())), precision=precision,
                                       preferred_element_type=jnp.float32)

    out_ref[...] = jax.lax.fori_loop(0, steps, step, jnp.zeros((block_m, block_n), jnp.float32))

  return pl.pallas_call(
      kernel,
      out_shape=jax.ShapeDtypeStruct((xp.shape[0], yp.shape[0]), jnp.float32),
      grid=(xp.shape[0] // block_m, yp.shape[0] // block_n),
      in_specs=[pl.BlockSpec((block_m, xp.shape[1]), lambda i, j: (i, 0)),
                pl.BlockSpec((block_n, yp.shape[1]), lambda i, j: (j, 0))],
      out_specs=pl.BlockSpec((block_m, block_n), lambda i, j: (i, j)),
      compiler_params=plt.CompilerParams(num_warps=config.num_warps,
                                         num_stages=config.num_stages),
      interpret=interpret,
      name="jsparse_dense_product_nt",
  )(xp, yp)
