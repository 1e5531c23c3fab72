"""Sharded SpMM / SpMV / SDDMM equal the single-device ops and a float64 reference."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jsparse
from jsparse import sharding
from tests.helpers import make_sparse, random_dense
from tests.ops.cases import assert_close
from tests.sharding.meshes import LAYOUTS, host_dense, mesh, uneven_matrix

# CSR on every layout; the other formats on a row split and on a 2-D (rows and K) split.
CASES = [("csr", name) for name in LAYOUTS] + [
    (fmt, name) for fmt in ("coo", "bsr", "nm", "tiled") for name in ("rows8", "grid2x4")]


def _ops(spmm, spmv, sddmm):
  return jax.jit(lambda A, B, x, X, Y: (spmm(A, B), spmv(A, x), sddmm(A, X, Y)))


_sharded_ops = _ops(sharding.spmm, sharding.spmv, sharding.sddmm)
_single_device_ops = _ops(jsparse.spmm, jsparse.spmv, jsparse.sddmm)


@functools.cache
def _problem(fmt):
  """One uneven matrix per format, its operands and the single-device results (computed once:
  each new shape costs XLA compilations)."""
  rng = np.random.default_rng(sum(fmt.encode()))
  A = uneven_matrix(fmt, rng, pad=3 if fmt in ("coo", "csr") else 0)
  draw = lambda *shape: jnp.asarray(rng.uniform(-1, 1, shape))
  operands = (draw(A.shape[1], 5), draw(A.shape[1]), draw(A.shape[0], 3), draw(A.shape[1], 3))
  return A, operands, _single_device_ops(A, *operands)


@pytest.mark.parametrize("fmt, layout", CASES)
def test_sharded_ops_equal_single_device_ops(fmt, layout):
  shape, names, spec = LAYOUTS[layout]
  A, (B, x, X, Y), (single_out, single_vec, single_sampled) = _problem(fmt)
  S = sharding.shard(A, mesh(shape, names), spec)
  out, vec, sampled = _sharded_ops(S, B, x, X, Y)
  dense, stored = host_dense(A)
  B, x, X, Y = (np.asarray(a) for a in (B, x, X, Y))
  assert_close(out, dense @ B, np.abs(dense) @ np.abs(B), jnp.float64)
  assert_close(vec, dense @ x, np.abs(dense) @ np.abs(x), jnp.float64)
  np.testing.assert_allclose(np.asarray(out), np.asarray(single_out), rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(np.asarray(vec), np.asarray(single_vec), rtol=1e-13, atol=1e-13)
  sampled_dense, sampled_stored = host_dense(sharding.unshard(sampled))
  np.testing.assert_array_equal(sampled_stored, stored)
  np.testing.assert_allclose(sampled_dense, host_dense(single_sampled)[0], rtol=1e-13, atol=1e-13)
  np.testing.assert_allclose(sampled_dense, np.where(stored, X @ Y.T, 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_half_and_single_precision_match_the_single_device_op(dtype):
  rng = np.random.default_rng(3)
  A = uneven_matrix("csr", rng, dtype)
  S = sharding.shard(A, mesh((2, 4), ("x", "y")), P("x", "y"))
  B = jnp.asarray(rng.uniform(-1, 1, (A.shape[1], 4)).astype(dtype))
  out = jax.jit(sharding.spmm)(S, B)
  assert out.dtype == dtype
  dense, B = host_dense(A)[0], np.asarray(B.astype(jnp.float64))
  assert_close(out, dense @ B, np.abs(dense) @ np.abs(B), dtype)


def test_columns_of_b_split_over_a_second_axis():
  rng = np.random.default_rng(4)
  A = uneven_matrix("csr", rng)
  S = sharding.shard(A, mesh((2, 4), ("x", "y")), P("x"))
  B = jnp.asarray(rng.uniform(-1, 1, (A.shape[1], 8)))
  out = jax.jit(lambda S, B: sharding.spmm(S, B, n_axis="y"))(S, B)
  assert out.sharding.spec == P(None, "y")
  np.testing.assert_allclose(np.asarray(out), host_dense(A)[0] @ np.asarray(B), rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("shape, density", [((3, 9), 0.5), ((1, 6), 1.0), ((12, 5), 0.0)])
def test_more_devices_than_rows_one_row_and_no_nonzeros(shape, density):
  rng = np.random.default_rng(5)
  A = make_sparse("csr", random_dense(rng, shape, density))
  S = sharding.shard(A, mesh((8,), ("x",)), P("x"))
  B = jnp.asarray(rng.uniform(-1, 1, (shape[1], 1)))
  np.testing.assert_allclose(np.asarray(jax.jit(sharding.spmm)(S, B)),
                             host_dense(A)[0] @ np.asarray(B), rtol=1e-12, atol=1e-12)


def test_gradients_equal_the_single_device_gradients():
  rng = np.random.default_rng(6)
  A = uneven_matrix("csr", rng)
  S = sharding.shard(A, mesh((2, 4), ("x", "y")), P("x", "y"))
  B = jnp.asarray(rng.uniform(-1, 1, (A.shape[1], 3)))

  def gradients(spmm, matrix, values):
    """d/d(values, B) of sum(sin(A @ B)), one compilation."""
    loss = lambda values, B: jnp.sum(jnp.sin(spmm(matrix.with_data(values), B)))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(values, B)

  grad_values, grad_b = gradients(sharding.spmm, S, S.pieces.data)
  expected_values, expected_b = gradients(jsparse.spmm, A, A.data)
  np.testing.assert_allclose(np.asarray(grad_b), np.asarray(expected_b), rtol=1e-12, atol=1e-12)
  as_matrix = sharding.unshard(S.with_data(grad_values))
  np.testing.assert_allclose(host_dense(as_matrix)[0],
                             host_dense(A.with_data(np.asarray(expected_values)))[0],
                             rtol=1e-12, atol=1e-12)


def test_bad_arguments_name_what_is_wrong():
  rng = np.random.default_rng(7)
  A = uneven_matrix("csr", rng)
  grid = mesh((2, 4), ("x", "y"))
  with pytest.raises(ValueError, match="mesh axis 'z' is not in the mesh"):
    sharding.shard(A, grid, P("z"))
  with pytest.raises(ValueError, match="same mesh axis"):
    sharding.shard(A, grid, P("x", "x"))
  with pytest.raises(TypeError, match="matrix must be a jsparse sparse matrix"):
    sharding.shard(np.ones((3, 3)), grid)
  with pytest.raises(ValueError, match="row_cuts must hold 3 cuts"):
    sharding.shard(A, grid, P("x"), row_cuts=(0, 37))
  with pytest.raises(ValueError, match="concrete arrays"):
    jax.jit(lambda A: sharding.shard(A, grid, P("x")).pieces.data)(A)
  S = sharding.shard(A, grid, P("x"))
  with pytest.raises(ValueError, match=r"B.shape\[0\] has the wrong size"):
    sharding.spmm(S, jnp.ones((A.shape[1] + 1, 2)))
  with pytest.raises(ValueError, match="n_axis='x' must be a mesh axis that does not split A"):
    sharding.spmm(S, jnp.ones((A.shape[1], 4)), n_axis="x")
  with pytest.raises(ValueError, match="multiple of the 4 devices"):
    sharding.spmm(S, jnp.ones((A.shape[1], 3)), n_axis="y")
  with pytest.raises(TypeError, match="A must be a jsparse.sharding.ShardedSparse"):
    sharding.spmm(A, jnp.ones((A.shape[1], 2)))
