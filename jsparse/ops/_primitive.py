"""Plumbing shared by the jsparse primitives: operand splitting, lowering dispatch, batching.

Each primitive's operands are ``(data?, *index_arrays, *dense_operands)``; the number of index
arrays depends on the format (``NUM_INDEX_ARRAYS``), which the static ``layout`` parameter names.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax.interpreters import ad, mlir

from jsparse.formats.base import SparseMatrix
from jsparse.formats.layout import SparseLayout
from jsparse.formats.validation import VALUE_DTYPES
from jsparse.ops import registry

NUM_INDEX_ARRAYS = {"coo": 2, "csr": 2, "bsr": 2, "nm": 2, "tiled": 3}


def split_index_arrays(operands: Sequence[Any], layout: SparseLayout):
  """Splits ``(*index_arrays, *rest)`` into the two tuples."""
  count = NUM_INDEX_ARRAYS[layout.format]
  return tuple(operands[:count]), tuple(operands[count:])


def register_lowerings(primitive: Any, op: str, reference: Callable[..., Any]) -> None:
  """Lowers ``primitive`` through the registry on every platform (reference by default)."""

  def lower_on(platform: str | None):
    def lowering(ctx, *args, **params):
      kernel = None
      if platform is not None:
        kernel = registry.select_kernel(op, params["layout"].format, platform, params["impl"],
                                        ctx.avals_in, params)
      fn = reference if kernel is None else kernel.fn
      return mlir.lower_fun(functools.partial(fn, **params), multiple_results=False)(ctx, *args)
    return lowering

  mlir.register_lowering(primitive, lower_on(None))
  for platform in registry.PLATFORMS:
    mlir.register_lowering(primitive, lower_on(platform), platform=platform)


def define_eager_impl(primitive: Any) -> None:
  """Eager calls compile the primitive, so they take the same lowering as jitted ones."""

  @functools.lru_cache(maxsize=None)
  def compiled(params: tuple) -> Callable[..., Any]:
    return jax.jit(functools.partial(primitive.bind, **dict(params)))

  primitive.def_impl(lambda *args, **params: compiled(tuple(sorted(params.items())))(*args))


def batch_by_loop(primitive: Any, batched_args: Sequence[Any], batch_dims: Sequence[Any],
                  **params) -> tuple[jax.Array, int]:
  """Batching rule of last resort: one call per batch element, in a ``lax.map`` loop.

  Keeps the selected backend (each iteration binds the primitive again); used when sparse index
  arrays or several operands are batched, where no single larger call computes the same thing.
  """
  moved = [None if dim is None else jnp.moveaxis(arg, dim, 0)
           for arg, dim in zip(batched_args, batch_dims)]

  def one(sliced):
    it = iter(sliced)
    args = [arg if dim is None else next(it) for arg, dim in zip(batched_args, batch_dims)]
    return primitive.bind(*args, **params)

  out = jax.lax.map(one, [arg for arg in moved if arg is not None])
  return out, 0


# -- checks of the public functions' arguments ------------------------------------------------
def check_sparse(name: str, matrix: Any) -> SparseMatrix:
  if not isinstance(matrix, SparseMatrix):
    raise TypeError(f"{name} must be a jsparse sparse matrix (COO, CSR, BSR or NM), got "
                    f"{type(matrix).__name__}")
  return matrix


def check_dense(name: str, array: Any, ndim: int, what: str) -> jax.Array:
  array = jnp.asarray(array)
  if array.ndim != ndim:
    raise ValueError(f"{name} must be {ndim}-D {what}, got shape {array.shape}")
  return array


def check_layer_input(x: Any, k: int) -> jax.Array:
  """x [..., K] of a layer's product ``x @ A.T`` as an array; raises ValueError naming x when
  its last axis is not A's K."""
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[-1] != k:
    raise ValueError(f"x must be [..., K] with K = A.shape[1] = {k}, got shape {x.shape}")
  return x


def common_value_dtype(**arrays: Any) -> jnp.dtype:
  """The promoted dtype of the named operands; it must be float16/bfloat16/float32/float64."""
  dtype = jnp.result_type(*(jnp.dtype(a.dtype) for a in arrays.values()))
  if not jnp.issubdtype(dtype, jnp.floating) or jnp.dtype(dtype) not in VALUE_DTYPES:
    described = ", ".join(f"{name}: {a.dtype}" for name, a in arrays.items())
    raise TypeError(f"operands must promote to float16, bfloat16, float32 or float64, got "
                    f"{described} -> {dtype}")
  return jnp.dtype(dtype)


def check_length(name: str, actual: int, expected: int, rule: str) -> None:
  if actual != expected:
    raise ValueError(f"{name} has the wrong size: {rule}, expected {expected}, got {actual}")


def zero_cotangent(undefined_primal: Any) -> Any:
  """A symbolic zero cotangent for an undefined primal (``to_ct_aval`` where jax has it)."""
  aval = undefined_primal.aval
  return ad.Zero(aval.to_ct_aval() if hasattr(aval, "to_ct_aval") else aval)


def sum_tangents(terms: Sequence[Any], primal_out: Any) -> Any:
  """The sum of the nonzero JVP terms, or a symbolic zero when there are none."""
  if not terms:
    return ad.Zero.from_primal_value(primal_out)
  return functools.reduce(lambda a, b: a + b, terms)
