"""jsparse.spmm on a CompressedNM: which path each call takes (cuSPARSELt or the held NM
matrix), and the matrix path's products against float64. cuSPARSELt's own products are tested on
the GPU (tests/gpu/test_cusparselt.py); here its call is replaced by a marker."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import cusparselt
from jsparse.ops import compressed_nm


def two_four(shape=(32, 64), dtype=jnp.bfloat16, seed=0):
  rng = np.random.default_rng(seed)
  values = rng.integers(1, 9, size=shape).astype(np.float64) / 4 * rng.choice([-1, 1], shape)
  matrix = jsparse.NM.fromdense(jnp.asarray(values, dtype))
  return matrix, np.asarray(matrix.todense(), np.float64)


def compressed(matrix, keep=True, mma=False):
  """A CompressedNM whose bytes are never read here (cuSPARSELt's call is replaced), with the
  matrix's MmaNM copy when ``mma``."""
  return jsparse.CompressedNM(jnp.arange(16, dtype=jnp.uint8), matrix.shape, matrix.dtype,
                              matrix=matrix if keep else None,
                              mma=jsparse.MmaNM.from_nm(matrix) if mma else None)


@pytest.fixture
def no_sparse_cores(monkeypatch):
  """cuSPARSELt reported unavailable, as on a machine without a GPU (these tests' fake bytes
  must never reach it on one that has a GPU)."""
  monkeypatch.setattr(cusparselt, "available", lambda: "no CUDA device visible to JAX")


@pytest.fixture
def fake_sparse_cores(monkeypatch):
  """cuSPARSELt reported available and routed to from 32x64 weights up; its products return 1000
  everywhere, so the path taken shows in the result. Returns the list of (M, K, N) they were
  called with."""
  calls = []

  def fake_matmul(a, x, alg=None):
    calls.append((*a.shape, x.shape[1]))
    return jnp.full((a.shape[0], x.shape[1]), 1000, x.dtype)

  def fake_matmul_transposed(x, a, alg=None):
    calls.append((*a.shape, x.shape[0]))
    return jnp.full((x.shape[0], a.shape[0]), 1000, x.dtype)

  monkeypatch.setattr(cusparselt, "available", lambda: True)
  monkeypatch.setattr(cusparselt, "ROUTE_MIN_WEIGHT", 32 * 64)  # these tests' small matrices
  monkeypatch.setattr(cusparselt, "matmul", fake_matmul)
  monkeypatch.setattr(cusparselt, "matmul_transposed", fake_matmul_transposed)
  return calls


def test_matrix_path_matches_float64(no_sparse_cores):
  matrix, dense = two_four((48, 64))
  A = compressed(matrix)
  rng = np.random.default_rng(1)
  for columns in (1, 5, cusparselt.ROUTE_MIN_N):
    b64 = rng.integers(-4, 5, size=(64, columns)).astype(np.float64) / 2
    out = jax.jit(jsparse.spmm)(A, jnp.asarray(b64, jnp.bfloat16))
    np.testing.assert_allclose(np.asarray(out, np.float64), dense @ b64, rtol=1e-2, atol=1e-2)
  x64 = rng.integers(-4, 5, size=(2, 3, 64)).astype(np.float64) / 2
  out = jsparse.ops.matmul_transposed(jnp.asarray(x64, jnp.bfloat16), A)
  np.testing.assert_allclose(np.asarray(out, np.float64), x64 @ dense.T, rtol=1e-2, atol=1e-2)
  c64 = rng.integers(-4, 5, size=(48, 7)).astype(np.float64) / 2
  out = jsparse.spmm(A, jnp.asarray(c64, jnp.bfloat16), transpose_a=True)
  np.testing.assert_allclose(np.asarray(out, np.float64), dense.T @ c64, rtol=1e-2, atol=1e-2)


def test_prefill_goes_to_the_sparse_cores_and_decoding_to_the_matrix(fake_sparse_cores):
  matrix, dense = two_four((32, 64))
  A = compressed(matrix)
  wide = jnp.ones((64, cusparselt.ROUTE_MIN_N), jnp.bfloat16)
  narrow = jnp.ones((64, 16), jnp.bfloat16)
  assert float(jsparse.spmm(A, wide)[0, 0]) == 1000
  assert float(jsparse.spmm(A, narrow)[0, 0]) == pytest.approx(dense[0].sum(), rel=1e-2)
  assert fake_sparse_cores == [(32, 64, cusparselt.ROUTE_MIN_N)]
  tokens = jnp.ones((2, cusparselt.ROUTE_MIN_N, 64), jnp.bfloat16)
  out = jsparse.ops.matmul_transposed(tokens, A)
  assert out.shape == (2, cusparselt.ROUTE_MIN_N, 32) and float(out[0, 0, 0]) == 1000
  assert fake_sparse_cores[-1] == (32, 64, 2 * cusparselt.ROUTE_MIN_N)
  # Forced, the sparse cores take a narrow call too; a held-matrix-less A takes every call.
  assert float(jsparse.spmm(A, narrow, impl="cusparselt")[0, 0]) == 1000
  assert float(jsparse.spmm(compressed(matrix, keep=False), narrow)[0, 0]) == 1000


def test_calls_cusparselt_cannot_run_go_to_the_matrix(fake_sparse_cores):
  matrix, dense = two_four((32, 64))
  A = compressed(matrix)
  wide32 = jnp.ones((64, cusparselt.ROUTE_MIN_N), jnp.float32)
  out = jsparse.spmm(A, wide32)  # another dtype: the promoted product on the matrix
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out[:, 0]), dense.sum(axis=1), rtol=1e-2)
  out = jsparse.spmm(A, jnp.ones((32, cusparselt.ROUTE_MIN_N), jnp.bfloat16), transpose_a=True)
  np.testing.assert_allclose(np.asarray(out[:, 0], np.float64), dense.sum(axis=0), rtol=1e-2)
  assert fake_sparse_cores == []
  for kwargs in (dict(transpose_a=True), dict()):
    rows = 32 if kwargs else 64
    b = jnp.ones((rows, 16), jnp.float32 if not kwargs else jnp.bfloat16)
    with pytest.raises(ValueError, match="impl='cusparselt' cannot run this product"):
      jsparse.spmm(A, b, impl="cusparselt", **kwargs)


def test_bad_calls_are_refused_naming_the_argument(no_sparse_cores):
  matrix, _ = two_four((32, 64))
  with pytest.raises(ValueError, match="impl must be one of .* for a CompressedNM"):
    jsparse.spmm(compressed(matrix), jnp.ones((64, 4), jnp.bfloat16), impl="fast")
  with pytest.raises(ValueError, match="B must be 2-D"):
    jsparse.spmm(compressed(matrix), jnp.ones((64,), jnp.bfloat16))
  with pytest.raises(ValueError, match="x must be \\[..., K\\] with K = A.shape\\[1\\] = 64"):
    jsparse.ops.matmul_transposed(jnp.ones((3, 32), jnp.bfloat16), compressed(matrix))
  # Without cuSPARSELt and its matrix a CompressedNM has nowhere to run.
  with pytest.raises(ValueError, match="without its NM matrix .*cuSPARSELt is not available"):
    jsparse.spmm(compressed(matrix, keep=False), jnp.ones((64, 4), jnp.bfloat16))


@pytest.fixture
def fake_mma_kernel(monkeypatch):
  """The mma.sp kernel reported available; its products return 2000 everywhere. Returns the
  list of (x shape, tokens_major) it was called with."""
  from jsparse._gpu import sparse_mma
  calls = []

  def fake(a, x, *, tokens_major=False, config=None):
    calls.append((tuple(x.shape), tokens_major))
    shape = (x.shape[0], a.shape[0]) if tokens_major else (a.shape[0], x.shape[1])
    return jnp.full(shape, 2000, x.dtype)

  monkeypatch.setattr(sparse_mma, "available", lambda: True)
  monkeypatch.setattr(sparse_mma, "matmul", fake)
  return calls


def test_decoding_goes_to_the_mma_kernel(fake_sparse_cores, fake_mma_kernel):
  from jsparse._gpu import sparse_mma
  matrix, dense = two_four((32, 64))
  A = compressed(matrix, mma=True)
  for n in (1, 8, sparse_mma.ROUTE_MAX_N):
    assert float(jsparse.spmm(A, jnp.ones((64, n), jnp.bfloat16))[0, 0]) == 2000
  out = jsparse.ops.matmul_transposed(jnp.ones((2, 3, 64), jnp.bfloat16), A)
  assert out.shape == (2, 3, 32) and float(out[0, 0, 0]) == 2000
  assert fake_mma_kernel[-1] == ((6, 64), True)
  count = len(fake_mma_kernel)
  # Between the two: the matrix; prefill: cuSPARSELt; transposed or float32: the matrix.
  middle = jsparse.spmm(A, jnp.ones((64, sparse_mma.ROUTE_MAX_N + 1), jnp.bfloat16))
  assert float(middle[0, 0]) == pytest.approx(dense[0].sum(), rel=1e-2)
  wide = jnp.ones((64, cusparselt.ROUTE_MIN_N), jnp.bfloat16)
  assert float(jsparse.spmm(A, wide)[0, 0]) == 1000
  jsparse.spmm(A, jnp.ones((32, 4), jnp.bfloat16), transpose_a=True)
  jsparse.spmm(A, jnp.ones((64, 4), jnp.float32))
  assert len(fake_mma_kernel) == count
  # Forced: the kernel up to its MAX_N; without the copy, a clear error.
  assert float(jsparse.spmm(A, jnp.ones((64, 24), jnp.bfloat16), impl="mma")[0, 0]) == 2000
  with pytest.raises(ValueError, match="impl='mma' needs A's MmaNM copy"):
    jsparse.spmm(compressed(matrix), jnp.ones((64, 4), jnp.bfloat16), impl="mma")
  with pytest.raises(ValueError, match="impl='mma' cannot run this product: transpose_a"):
    jsparse.spmm(A, jnp.ones((32, 4), jnp.bfloat16), transpose_a=True, impl="mma")


def test_constructor_checks_its_static_fields():
  matrix, _ = two_four((32, 64))
  data = jnp.arange(16, dtype=jnp.uint8)
  with pytest.raises(TypeError, match="dtype must be bfloat16 or float16"):
    jsparse.CompressedNM(data, (32, 64), jnp.float32)
  with pytest.raises(ValueError, match="shape must be a pair"):
    jsparse.CompressedNM(data, (32, 64, 1), jnp.bfloat16)
  with pytest.raises(ValueError, match=r"matrix must be 2:4 of shape \(16, 64\), got 2:4 of "
                     r"shape \(32, 64\)"):
    jsparse.CompressedNM(data, (16, 64), jnp.bfloat16, matrix=matrix)
  one_four = jsparse.NM.fromdense(jnp.ones((32, 64), jnp.bfloat16), n=1, m=4)
  with pytest.raises(ValueError, match="matrix must be 2:4 .* got 1:4"):
    jsparse.CompressedNM(data, (32, 64), jnp.bfloat16, matrix=one_four)
  with pytest.raises(TypeError, match="matrix must be a jsparse.NM or None, got CSR"):
    jsparse.CompressedNM(data, (32, 64), jnp.bfloat16, matrix=matrix.tocsr())
  with pytest.raises(TypeError, match="mma must be a jsparse.MmaNM or None, got NM"):
    jsparse.CompressedNM(data, (32, 64), jnp.bfloat16, mma=matrix)
  half = jsparse.MmaNM.from_nm(jsparse.NM.fromdense(jnp.ones((32, 64), jnp.float16)))
  with pytest.raises(ValueError, match=r"mma must be of shape \(32, 64\) and dtype bfloat16"):
    jsparse.CompressedNM(data, (32, 64), jnp.bfloat16, mma=half)


def test_compress_without_a_gpu_says_so(no_sparse_cores):
  matrix, _ = two_four((32, 64))
  with pytest.raises(RuntimeError, match="compress needs cuSPARSELt on a CUDA GPU"):
    cusparselt.from_nm(matrix)


def test_todense_and_the_matmul_operator(no_sparse_cores):
  matrix, dense = two_four((32, 64))
  A = compressed(matrix)
  np.testing.assert_array_equal(np.asarray(A.todense(), np.float64), dense)
  b64 = np.random.default_rng(3).integers(-4, 5, size=(64, 3)).astype(np.float64) / 2
  np.testing.assert_allclose(np.asarray(A @ jnp.asarray(b64, jnp.bfloat16), np.float64),
                             dense @ b64, rtol=1e-2, atol=1e-2)
  with pytest.raises(ValueError, match="holds only cuSPARSELt's opaque bytes"):
    compressed(matrix, keep=False).todense()


def test_is_a_pytree_that_jit_and_vmap_carry(no_sparse_cores):
  matrix, dense = two_four((32, 64))
  A = compressed(matrix)
  leaves, treedef = jax.tree.flatten(A)
  assert len(leaves) == 4 and jax.tree.unflatten(treedef, leaves).shape == (32, 64)
  b64 = np.random.default_rng(2).integers(-4, 5, size=(3, 64, 8)).astype(np.float64) / 2
  out = jax.jit(jax.vmap(jsparse.spmm, in_axes=(None, 0)))(A, jnp.asarray(b64, jnp.bfloat16))
  np.testing.assert_allclose(np.asarray(out, np.float64), np.einsum("mk,bkn->bmn", dense, b64),
                             rtol=1e-2, atol=1e-2)


def test_route_is_the_documented_rule(fake_sparse_cores):
  matrix, _ = two_four((32, 64))
  A = compressed(matrix)
  route = lambda n, dtype=jnp.bfloat16, **kw: compressed_nm.route(  # noqa: E731
      A, n, dtype, transpose_a=kw.get("transpose_a", False), impl=kw.get("impl", "auto"))
  assert route(cusparselt.ROUTE_MIN_N) == "cusparselt"
  assert route(cusparselt.ROUTE_MIN_N - 1) == "matrix"
  assert route(cusparselt.ROUTE_MIN_N, jnp.float16) == "matrix"
  assert route(cusparselt.ROUTE_MIN_N, transpose_a=True) == "matrix"
  assert route(cusparselt.ROUTE_MIN_N, impl="pallas") == "matrix"
  small, _ = two_four((16, 64))  # below ROUTE_MIN_WEIGHT
  assert compressed_nm.route(compressed(small), 4096, jnp.bfloat16, transpose_a=False,
                             impl="auto") == "matrix"
  assert compressed_nm.route(compressed(small, keep=False), 4096, jnp.bfloat16,
                             transpose_a=False, impl="auto") == "cusparselt"
