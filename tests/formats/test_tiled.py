"""Tiled bitmap format (``jsparse/formats/tiled.py``): round trips, validation, ops (reference)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings, strategies as st

import jsparse
from tests.helpers import random_dense, to_float64

jit_fromdense = jax.jit(jsparse.Tiled.fromdense, static_argnames=("tile_shape", "nse"))
jit_todense = jax.jit(lambda matrix: matrix.todense())


@pytest.mark.parametrize("shape,tile_shape", [
    ((37, 40), (16, 64)), pytest.param((12, 100), (5, 96), marks=pytest.mark.slow),
    pytest.param((1, 70), (1, 32), marks=pytest.mark.slow)], ids=str)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_round_trip_and_structure(shape, tile_shape, seed, density):
  rows, cols = shape
  rng = np.random.default_rng(seed)
  dense = random_dense(rng, (rows, cols), density, np.float32, empty_rows=min(rows, 2))
  # nse = M * K: one compiled shape per case, the surplus stored as padding.
  matrix = jit_fromdense(dense, tile_shape=tile_shape, nse=rows * cols)
  count = int(np.count_nonzero(dense))
  assert matrix.tile_shape == tile_shape and not np.any(np.asarray(matrix.data)[count:])
  np.testing.assert_array_equal(jit_todense(matrix), dense)
  np.testing.assert_array_equal(jax.jit(lambda m: m.tocoo().todense())(matrix), dense)
  # Packed values in storage order: tile by tile, row by row, column by column.
  tm, tk = tile_shape
  grid = (-(-rows // tm), -(-cols // tk))
  padded = np.zeros((grid[0] * tm, grid[1] * tk), np.float32)
  padded[:rows, :cols] = dense
  tiles = padded.reshape(grid[0], tm, grid[1], tk).transpose(0, 2, 1, 3)
  np.testing.assert_array_equal(matrix.data[:count], tiles[tiles != 0])
  np.testing.assert_array_equal(matrix.value_columns[:count], np.nonzero(tiles != 0)[3])
  rebuilt = jsparse.Tiled((matrix.data, matrix.value_columns, matrix.bitmaps,
                           matrix.row_offsets), shape=matrix.shape, validate=True)
  np.testing.assert_array_equal(jit_todense(rebuilt), dense)


def test_from_mask_keeps_kept_zeros_and_checks_the_mask_shape():
  rng = np.random.default_rng()
  dense = rng.standard_normal((19, 70)).astype(np.float32)
  mask = rng.random(dense.shape) < 0.3
  mask[4] = False  # an empty row
  kept_zero = tuple(np.argwhere(mask)[0])
  dense[kept_zero] = 0.0
  matrix = jsparse.Tiled.from_mask(dense, mask, tile_shape=(16, 32))
  assert matrix.nse == mask.sum()
  np.testing.assert_array_equal(jit_todense(matrix), np.where(mask, dense, 0))
  stored = jit_todense(matrix.with_data(jnp.ones_like(matrix.data)))  # the pattern itself
  np.testing.assert_array_equal(np.asarray(stored) != 0, mask)
  with pytest.raises(ValueError, match=r"mask must have x's shape \(19, 70\)"):
    jsparse.Tiled.from_mask(dense, mask[:, :64])
  with pytest.raises(TypeError, match="mask must be bool, got float32"):
    jsparse.Tiled.from_mask(dense, mask.astype(np.float32))
  with pytest.raises(TypeError, match="^x must"):
    jsparse.Tiled.from_mask(dense.astype(np.int32), mask)


# Slow (with the next three): 10-30 s each on CI's shared CPU; the GPU check runs them.
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float64])
def test_jit_fromdense_with_padding_and_dtypes(dtype):
  dense = random_dense(np.random.default_rng(), (20, 50), 0.3, dtype)
  nse = int(np.count_nonzero(dense)) + 7
  matrix = jit_fromdense(jnp.asarray(dense), tile_shape=(16, 32), nse=nse)
  assert matrix.nse == nse and matrix.dtype == jnp.dtype(dtype)
  np.testing.assert_array_equal(to_float64(matrix.todense()), to_float64(dense))
  rows, cols = (np.asarray(a) for a in matrix.tocoo().index_arrays)
  assert (rows[-7:] == 20).all() and (cols[-7:] == 50).all()


@pytest.mark.slow
def test_nse_zero_and_from_csr():
  empty = jit_fromdense(np.zeros((3, 40), np.float32), nse=0)
  assert empty.nse == 0 and not np.any(jit_todense(empty))
  np.testing.assert_array_equal(jsparse.spmm(empty, np.ones((40, 2), np.float32)), 0)
  dense = random_dense(np.random.default_rng(), (9, 33), 0.4, np.float32)
  matrix = jsparse.Tiled.from_sparse(jsparse.CSR.from_scipy(scipy.sparse.csr_array(dense)),
                                     tile_shape=(4, 32))
  np.testing.assert_array_equal(jit_todense(matrix), dense)


@pytest.mark.slow
def test_pytree_round_trip():
  matrix = jsparse.Tiled.fromdense(random_dense(np.random.default_rng(), (8, 32), 0.5,
                                                np.float32))
  leaves, tree = jax.tree_util.tree_flatten(matrix)
  assert len(leaves) == 4
  again = jax.tree_util.tree_unflatten(tree, leaves)
  np.testing.assert_array_equal(jax.jit(lambda m: m.todense())(again), matrix.todense())


@pytest.mark.slow
def test_ops_reference_lowerings_match_float64():
  rng = np.random.default_rng()
  dense = random_dense(rng, (21, 70), 0.3, np.float32, empty_rows=3)
  matrix = jsparse.Tiled.fromdense(dense, tile_shape=(8, 32), nse=int(np.count_nonzero(dense)) + 2)
  b, x, y = (rng.standard_normal(s).astype(np.float32) for s in ((70, 5), (21, 6), (70, 6)))
  d64 = dense.astype(np.float64)
  np.testing.assert_allclose(jsparse.spmm(matrix, b, impl="reference"), d64 @ b, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(jsparse.spmv(matrix, b[:, 0], impl="reference"), d64 @ b[:, 0],
                             rtol=1e-5, atol=1e-5)
  at_b = jsparse.spmm(matrix, x[:, :5], transpose_a=True, impl="reference")
  np.testing.assert_allclose(at_b, d64.T @ x[:, :5], rtol=1e-5, atol=1e-5)
  scores = jsparse.sddmm(matrix, x, y, impl="reference")
  np.testing.assert_allclose(scores.todense(), (x @ y.T) * (dense != 0), rtol=1e-5, atol=1e-5)
  assert not np.any(np.asarray(scores.data)[-2:])
  grad = jax.grad(lambda data: jnp.sum(jsparse.spmm(matrix.with_data(data), b) ** 2))(matrix.data)
  out = d64 @ b
  expected = (2 * out @ b.T)[dense != 0]
  np.testing.assert_allclose(np.asarray(grad)[:-2], expected[np.argsort(
      _storage_order(dense, (8, 32)))], rtol=1e-4, atol=1e-4)


def _storage_order(dense, tile_shape):
  """Row-major positions of the nonzeros of ``dense`` in the tiled storage order."""
  rows, cols = np.nonzero(dense)
  tm, tk = tile_shape
  tile_cols = -(-dense.shape[1] // tk)
  key = ((rows // tm) * tile_cols + cols // tk) * tm * tk + (rows % tm) * tk + cols % tk
  return np.argsort(np.argsort(key))


@functools.cache
def _valid_arrays() -> tuple[tuple[str, np.ndarray], ...]:
  """The arrays of one random valid 6x40 Tiled matrix (built once: eager fromdense takes seconds
  on CI's shared CPU), which each validation case copies and breaks in one way."""
  matrix = jsparse.Tiled.fromdense(random_dense(np.random.default_rng(), (6, 40), 0.5,
                                                np.float32), tile_shape=(4, 64))
  return tuple((name, np.asarray(getattr(matrix, name)))
               for name in ("data", "value_columns", "bitmaps", "row_offsets"))


@pytest.mark.parametrize("mutate,message", [
    (lambda a: a.update(row_offsets=a["row_offsets"] + 1), "row_offsets must be the exclusive"),
    (lambda a: a.update(bitmaps=a["bitmaps"] | np.uint32(1 << 31)), "outside the"),
    (lambda a: a.update(value_columns=(a["value_columns"] + 1).astype(np.uint8)),
     "value_columns must hold"),
    pytest.param(lambda a: a.update(data=a["data"][:3]), "value_columns must have shape",
                 marks=pytest.mark.slow),
    pytest.param(lambda a: a.update(bitmaps=a["bitmaps"].astype(np.int32)),
                 "bitmaps must be uint32", marks=pytest.mark.slow),
    pytest.param(lambda a: a.update(row_offsets=a["row_offsets"][:, :, :2]),
                 "row_offsets must have shape", marks=pytest.mark.slow),
], ids=["offsets", "outside", "columns", "nse", "bitmap-dtype", "offsets-shape"])
def test_validation_names_the_argument(mutate, message):
  arrays = dict(_valid_arrays())
  mutate(arrays)
  with pytest.raises((ValueError, TypeError), match=message):
    jsparse.Tiled(tuple(arrays.values()), shape=(6, 40))


def test_bad_tile_shape():
  with pytest.raises(ValueError, match="tile_shape must be"):
    jsparse.Tiled.fromdense(np.ones((4, 64), np.float32), tile_shape=(4, 48))
  with pytest.raises(ValueError, match="tile_shape must be"):
    jsparse.Tiled.fromdense(np.ones((4, 64), np.float32), tile_shape=(4, 512))
