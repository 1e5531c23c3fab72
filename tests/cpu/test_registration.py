"""jsparse/_cpu registers every kernel; "auto" picks them, falls back where they refuse; vmap
and grad work with the C++ kernels forced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jsparse
from jsparse import _cpu
from jsparse._cpu import sddmm, spmm
from jsparse.formats.layout import SparseLayout
from jsparse.ops import registry
from tests.cpu.extension import random_matrix, random_operand, require_extension

require_extension()

FORMATS = ("coo", "csr", "bsr", "nm")


def test_every_op_and_format_has_a_cpu_ffi_kernel():
  for op, fn in (("spmm", spmm.spmm_ffi), ("spmv", spmm.spmv_ffi), ("sddmm", sddmm.sddmm_ffi)):
    for fmt in FORMATS:
      kernels = {k.impl: k for k in registry.registered_kernels(op, fmt, "cpu")}
      assert kernels["ffi"].fn is fn, (op, fmt)
  assert _cpu.vector_isa()


def _aval(shape, dtype):
  return jax.ShapeDtypeStruct(shape, dtype)


def test_supports_names_what_it_refuses():
  params = {"layout": SparseLayout("csr", (3, 5)), "transpose": True, "impl": "ffi"}
  f32, i32, i64 = jnp.float32, jnp.int32, jnp.int64
  avals = [_aval((8,), f32), _aval((8,), i32), _aval((4,), i32), _aval((5, 2), f32)]
  assert spmm.spmm_supports(avals, params) is True
  assert spmm.spmm_supports([avals[0], _aval((8,), i64), _aval((4,), i64), avals[3]],
                            params) is True
  f16 = [_aval((8,), jnp.float16), *avals[1:3], _aval((5, 2), jnp.float16)]
  assert "dtype float16 not supported" in spmm.spmm_supports(f16, params)
  mixed = [avals[0], _aval((8,), i64), *avals[2:]]
  assert "index arrays of different dtypes" in spmm.spmm_supports(mixed, params)
  uint = [avals[0], _aval((8,), jnp.uint32), _aval((4,), jnp.uint32), avals[3]]
  assert "index dtype uint32 not supported" in spmm.spmm_supports(uint, params)
  other = [*avals[:3], _aval((5, 2), jnp.float64)]
  assert "B dtype float64 differs from data dtype float32" in spmm.spmm_supports(other, params)
  sddmm_avals = [_aval((8,), i32), _aval((4,), i32), _aval((3, 2), f32), _aval((5, 2), f32)]
  assert sddmm.sddmm_supports(sddmm_avals, params) is True


def test_float16_falls_back_under_auto_and_is_refused_when_forced():
  rng = np.random.default_rng()
  matrix, dense = random_matrix(rng, "csr", (6, 5), 0.5, np.float16)
  b, b64 = random_operand(rng, (5, 2), np.float16)
  auto = jax.jit(lambda A, B: jsparse.spmm(A, B))
  assert "jsparse_csr_spmm" not in auto.lower(matrix, b).as_text()
  np.testing.assert_allclose(np.asarray(auto(matrix, b), np.float64), dense @ b64, rtol=5e-3,
                             atol=5e-3)
  with pytest.raises(NotImplementedError, match="dtype float16 not supported"):
    jax.jit(lambda A, B: jsparse.spmm(A, B, impl="ffi"))(matrix, b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_vmap_with_ffi_forced_matches_loop(fmt):
  rng = np.random.default_rng()
  matrix, _ = random_matrix(rng, fmt, (8, 8), 0.5, np.float64, block_shape=(2, 4))
  batch, _ = random_operand(rng, (3, 8, 2), np.float64)
  f = lambda b: jsparse.spmm(matrix, b, impl="ffi")
  np.testing.assert_allclose(jax.vmap(f)(batch), np.stack([f(b) for b in batch]), rtol=1e-13)
  # Batched values go through the primitive's loop over the batch, still on the kernel.
  values = jnp.stack([matrix.data, 2 * matrix.data])
  g = lambda data: jsparse.spmm(matrix.with_data(data), batch[0], impl="ffi")
  assert "jsparse_" in jax.jit(jax.vmap(g)).lower(values).as_text()
  np.testing.assert_allclose(jax.vmap(g)(values), np.stack([g(v) for v in values]), rtol=1e-13)
  x, _ = random_operand(rng, (4, 8), np.float64)
  h = lambda x: jsparse.spmv(matrix, x, impl="ffi")
  np.testing.assert_allclose(jax.vmap(h)(x), np.stack([h(v) for v in x]), rtol=1e-13)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gradients_with_ffi_forced(fmt):
  """The gradients need A.T @ B and SDDMM: with impl="ffi" all of them run in C++."""
  rng = np.random.default_rng()
  matrix, _ = random_matrix(rng, fmt, (6, 8), 0.6, np.float64, block_shape=(2, 4))
  b, _ = random_operand(rng, (8, 3), np.float64)
  f = lambda data, b: jsparse.spmm(matrix.with_data(data), b, impl="ffi")
  check_grads(f, (matrix.data, b), order=1, modes=["fwd", "rev"])
  x, _ = random_operand(rng, (6, 4), np.float64)
  y, _ = random_operand(rng, (8, 4), np.float64)
  g = lambda x, y: jsparse.sddmm(matrix, x, y, impl="ffi").data
  check_grads(g, (x, y), order=1, modes=["fwd", "rev"])
  loss = lambda data, b: jnp.sum(jnp.sin(jsparse.spmm(matrix.with_data(data), b, impl="ffi")))
  text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(matrix.data, b).as_text()
  assert f"jsparse_{fmt}_sddmm" in text and "transpose = true" in text
