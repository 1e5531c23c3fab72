"""Random sparse operands for the op tests: hypothesis strategies over formats, shapes, dtypes."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

import jsparse
from tests.helpers import random_dense
from jsparse.ops import registry

FORMATS = ("coo", "csr", "bsr", "nm")
DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16, jnp.float64)
# Relative tolerance against a float64 reference, scaled by |A| @ |B| (see assert_close).
RTOL = {jnp.dtype(jnp.float64): 1e-12, jnp.dtype(jnp.float32): 2e-6,
        jnp.dtype(jnp.bfloat16): 2e-2, jnp.dtype(jnp.float16): 2e-3}


@dataclasses.dataclass
class Case:
  """A sparse matrix and its float64 dense copy."""

  matrix: jsparse.SparseMatrix
  dense: np.ndarray  # float64 [M, K], exactly the stored values.
  rng: np.random.Generator

  @property
  def dtype(self):
    return self.matrix.dtype

  def operand(self, *shape: int) -> tuple[jnp.ndarray, np.ndarray]:
    """A fresh random dense operand in the case's dtype and its float64 copy."""
    values = self.rng.uniform(-1.0, 1.0, size=shape)
    array = jnp.asarray(values, self.dtype)
    return array, np.asarray(array.astype(jnp.float64))


def make_matrix(fmt: str, dense: np.ndarray, dtype, *, block_shape=(1, 1), nm=(2, 4), pad=0):
  x = jnp.asarray(dense, dtype)
  if fmt == "coo":
    return jsparse.COO.fromdense(x, nse=int(np.count_nonzero(np.asarray(x))) + pad)
  if fmt == "csr":
    return jsparse.CSR.fromdense(x, nse=int(np.count_nonzero(np.asarray(x))) + pad)
  if fmt == "bsr":
    return jsparse.BSR.fromdense(x, block_shape=block_shape)
  return jsparse.NM.fromdense(x, n=nm[0], m=nm[1])


@st.composite
def cases(draw, formats=FORMATS, dtypes=DTYPES, max_dim: int = 12) -> Case:
  fmt = draw(st.sampled_from(formats))
  dtype = draw(st.sampled_from(dtypes))
  seed = draw(st.integers(0, 2**32 - 1))
  rng = np.random.default_rng(seed)
  rows = draw(st.integers(1, max_dim))
  cols = draw(st.integers(1, max_dim))
  kwargs = {}
  if fmt == "bsr":
    bm, bk = draw(st.sampled_from([(1, 1), (2, 3), (3, 2), (4, 4), (2, 1)]))
    rows, cols = bm * -(-rows // bm), bk * -(-cols // bk)
    kwargs["block_shape"] = (bm, bk)
  if fmt == "nm":
    n, m = draw(st.sampled_from([(2, 4), (1, 4), (4, 8), (1, 2), (3, 16)]))
    cols = m * -(-cols // m)
    kwargs["nm"] = (n, m)
  if fmt in ("coo", "csr"):
    kwargs["pad"] = draw(st.sampled_from([0, 0, 3]))
  density = draw(st.sampled_from([0.0, 0.1, 0.4, 1.0]))
  dense = random_dense(rng, (rows, cols), density, empty_rows=draw(st.integers(0, 2)),
                       ragged=draw(st.booleans()))
  matrix = make_matrix(fmt, dense, dtype, **kwargs)
  return Case(matrix, np.asarray(matrix.todense().astype(jnp.float64)), rng)


def impls_for(op: str, fmt: str) -> list[str]:
  """"reference" plus every backend registered for the CPU (the platform tests run on)."""
  return ["reference", "auto"] + sorted(
      {k.impl for k in registry.registered_kernels(op, fmt, platform="cpu")})


def assert_close(actual, expected: np.ndarray, scale: np.ndarray, dtype) -> None:
  """|actual - expected| <= rtol * scale + tiny, with scale = |A| @ |B| (the error bound)."""
  actual = np.asarray(jnp.asarray(actual).astype(jnp.float64))
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  bound = RTOL[jnp.dtype(dtype)] * (scale + 1e-30) + 1e-300
  error = np.abs(actual - expected)
  worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else ()
  assert (error <= bound).all(), (
      f"max error {error[worst]} > bound {bound[worst]} at {worst} (dtype {jnp.dtype(dtype)})")


def run_forced(impl: str, fn):
  """Calls ``fn()``; a forced backend may refuse a call it does not support (returns None then).

  Only an explicit refusal from the registry is tolerated, never for "auto" or "reference".
  """
  try:
    return fn()
  except NotImplementedError as error:
    if impl in ("auto", "reference") or "does not support this call" not in str(error):
      raise
    return None
