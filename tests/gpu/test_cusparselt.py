"""jsparse._gpu.cusparselt: 2:4 products through cuSPARSELt against a float64 product of the
same weights. The products need a CUDA GPU (and nvcc to build the library, done on first use);
the argument checks run anywhere."""

import jax
import jax.numpy as jnp

import jsparse
import numpy as np
import pytest

from jsparse._gpu import cusparselt


def two_four(rng, shape, dtype):
  """A random [M, K] matrix of dtype with exactly 2 nonzeros (exact in dtype) per group of 4
  along K, some rows empty; and its float64 copy."""
  values = rng.integers(-8, 9, size=shape).astype(np.float64) / 4
  values[values == 0] = 0.5
  keep = np.zeros((shape[0], shape[1] // 4, 4), bool)
  order = rng.random((shape[0], shape[1] // 4, 4)).argsort(axis=-1)[..., :2]
  np.put_along_axis(keep, order, True, axis=-1)
  w64 = np.where(keep.reshape(shape), values, 0.0)
  w64[:2] = 0.0  # empty rows
  return jnp.asarray(w64, dtype), w64


def test_bad_arguments_are_refused_naming_them():
  with pytest.raises(ValueError, match="w must be 2-D"):
    cusparselt.compress(jnp.zeros((16,), jnp.bfloat16))
  with pytest.raises(TypeError, match="w must be bfloat16 or float16"):
    cusparselt.compress(jnp.zeros((16, 16), jnp.float32))
  with pytest.raises(ValueError, match="multiples of 16"):
    cusparselt.compress(jnp.zeros((16, 24), jnp.bfloat16))
  bad = np.zeros((16, 16), np.float32)
  bad[3, 4:7] = 1.0
  with pytest.raises(ValueError, match="row 3, columns 4..7 hold 3 nonzeros"):
    cusparselt.check_two_four(bad)
  fake = cusparselt.CompressedNM(jnp.zeros((8,), jnp.uint8), (32, 64), jnp.dtype(jnp.bfloat16))
  with pytest.raises(ValueError, match="x must be \\[K, N\\] with K = 64"):
    cusparselt.matmul(fake, jnp.zeros((32, 8), jnp.bfloat16))
  with pytest.raises(TypeError, match="x must have the compressed matrix's dtype"):
    cusparselt.matmul(fake, jnp.zeros((64, 8), jnp.float16))
  with pytest.raises(ValueError, match="alg must be None or an int >= 0"):
    cusparselt.matmul(fake, jnp.zeros((64, 8), jnp.bfloat16), alg=-1)
  for n in (0, 2.5):
    with pytest.raises(ValueError, match="n must be a positive int"):
      cusparselt.autotune(fake, n)
  with pytest.raises(ValueError, match="calls must be a positive int"):
    cusparselt.autotune(fake, 8, calls=0)
  with pytest.raises(ValueError, match="repeat must be a positive int"):
    cusparselt.autotune(fake, 8, repeat=0)
  with pytest.raises(ValueError, match="x must be \\[N, K\\] with K = 64"):
    cusparselt.matmul_transposed(jnp.zeros((8, 32), jnp.bfloat16), fake)


def test_default_algorithm_prefers_a_tuned_choice(monkeypatch):
  monkeypatch.setattr(cusparselt, "_TUNED", {(256, 512, 2048, "bfloat16", False): 5,
                                             (256, 512, 2048, "bfloat16", True): 6})
  assert cusparselt.default_alg(256, 512, 2048, jnp.bfloat16) == 5
  assert cusparselt.default_alg(256, 512, 2048, jnp.bfloat16, tokens_major=True) == 6
  assert cusparselt.default_alg(256, 512, cusparselt.PREFILL_MIN_N,
                                jnp.bfloat16) == cusparselt.PREFILL_ALG
  assert cusparselt.default_alg(256, 512, 16, jnp.bfloat16) is None


@pytest.mark.gpu
@pytest.mark.parametrize("shape, n, dtype", [
    ((64, 128), 16, jnp.bfloat16), ((128, 256), 1, jnp.bfloat16), ((256, 64), 40, jnp.float16),
    ((1024, 2048), 1024, jnp.bfloat16)])
def test_matmul_matches_float64_product(shape, n, dtype):
  assert cusparselt.available() is True, cusparselt.available()
  rng = np.random.default_rng()
  w, w64 = two_four(rng, shape, dtype)
  x64 = rng.integers(-4, 5, size=(shape[1], n)).astype(np.float64) / 2
  x = jnp.asarray(x64, dtype)
  compressed = cusparselt.compress(w)
  out = jax.jit(cusparselt.matmul)(compressed, x)
  assert out.shape == (shape[0], n) and out.dtype == jnp.dtype(dtype)
  expected = w64 @ x64
  error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
  assert error < 1e-2, error
  assert not np.asarray(out[:2]).any()  # the empty rows


@pytest.mark.gpu
def test_every_algorithm_gives_the_product_and_autotune_picks_one():
  assert cusparselt.available() is True, cusparselt.available()
  rng = np.random.default_rng()
  w, w64 = two_four(rng, (256, 512), jnp.bfloat16)
  x64 = rng.integers(-4, 5, size=(512, 128)).astype(np.float64) / 2
  x = jnp.asarray(x64, jnp.bfloat16)
  compressed = cusparselt.compress(w)
  expected = w64 @ x64
  count = cusparselt.alg_count(256, 512, 128, jnp.bfloat16)
  assert count >= 1
  for alg in range(count):
    out = cusparselt.matmul(compressed, x, alg=alg)
    error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
    assert error < 1e-2, (alg, error)
  with pytest.raises(ValueError, match=f"alg must be below {count}"):
    cusparselt.matmul(compressed, x, alg=count)
  chosen = cusparselt.autotune(compressed, 128, calls=3)
  assert 0 <= chosen < count and cusparselt.default_alg(256, 512, 128, jnp.bfloat16) == chosen


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1, 40, 1024])
def test_matmul_transposed_matches_float64_product(n):
  assert cusparselt.available() is True, cusparselt.available()
  rng = np.random.default_rng()
  w, w64 = two_four(rng, (256, 512), jnp.bfloat16)
  compressed = cusparselt.compress(w)
  x64 = rng.integers(-4, 5, size=(n, 512)).astype(np.float64) / 2
  out = jax.jit(cusparselt.matmul_transposed)(jnp.asarray(x64, jnp.bfloat16), compressed)
  expected = x64 @ w64.T
  error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
  assert out.shape == (n, 256) and error < 1e-2, error
  assert not np.asarray(out[:, :2]).any()  # the empty rows of w
  count = cusparselt.alg_count(256, 512, cusparselt.padded_columns(n), jnp.bfloat16,
                               tokens_major=True)
  for alg in range(count):
    out = cusparselt.matmul_transposed(jnp.asarray(x64, jnp.bfloat16), compressed, alg=alg)
    error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
    assert error < 1e-2, (alg, error)


@pytest.mark.gpu
def test_from_nm_and_vmap_over_x():
  assert cusparselt.available() is True, cusparselt.available()
  rng = np.random.default_rng()
  w, w64 = two_four(rng, (128, 256), jnp.bfloat16)
  matrix = jsparse.NM.fromdense(w, n=2, m=4)
  compressed = jsparse.cusparselt.from_nm(matrix)
  x64 = rng.integers(-4, 5, size=(3, 256, 24)).astype(np.float64) / 2
  out = jax.jit(jax.vmap(cusparselt.matmul, in_axes=(None, 0)))(compressed,
                                                               jnp.asarray(x64, jnp.bfloat16))
  expected = np.einsum("mk,bkn->bmn", w64, x64)
  error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
  assert out.shape == (3, 128, 24) and error < 1e-2, error


@pytest.mark.gpu
@pytest.mark.parametrize("n", [16, cusparselt.ROUTE_MIN_N, 1024])
def test_spmm_on_compressed_routes_by_columns_and_matches_float64(n, monkeypatch):
  assert cusparselt.available() is True, cusparselt.available()
  monkeypatch.setattr(cusparselt, "ROUTE_MIN_WEIGHT", 256 * 512)  # this test's weight
  rng = np.random.default_rng()
  w, w64 = two_four(rng, (256, 512), jnp.bfloat16)
  A = cusparselt.from_nm(jsparse.NM.fromdense(w))
  x64 = rng.integers(-4, 5, size=(512, n)).astype(np.float64) / 2
  x = jnp.asarray(x64, jnp.bfloat16)
  run = jax.jit(jsparse.spmm)
  hlo = run.lower(A, x).compile().as_text()
  assert ("jsparse_cusparselt_matmul" in hlo) == (n >= cusparselt.ROUTE_MIN_N)
  out = run(A, x)
  expected = w64 @ x64
  error = np.abs(np.asarray(out, np.float64) - expected).max() / np.abs(expected).max()
  assert out.shape == (256, n) and error < 1e-2, error


@pytest.mark.gpu
def test_sparse_linear_on_the_sparse_tensor_cores(monkeypatch):
  from flax import nnx
  from jsparse.nn import SparseLinear, use_sparse_tensor_cores
  assert cusparselt.available() is True, cusparselt.available()
  monkeypatch.setattr(cusparselt, "ROUTE_MIN_WEIGHT", 256 * 512)  # this test's weight
  model = nnx.Sequential(SparseLinear(512, 256, format="nm", param_dtype=jnp.bfloat16,
                                      rngs=nnx.Rngs(0)))
  rng = np.random.default_rng()
  # 1202 tokens (padded to 1216 for cuSPARSELt), 40 (its default algorithm), 8 (Pallas).
  inputs = [jnp.asarray(rng.standard_normal((2, tokens, 512)), jnp.bfloat16)
            for tokens in (601, 20, 4)]
  before = [model(x) for x in inputs]
  assert use_sparse_tensor_cores(model) == 1
  forward = nnx.jit(lambda model, x: model(x))
  for x, before in zip(inputs, before):
    after = np.asarray(forward(model, x), np.float64)
    before = np.asarray(before, np.float64)
    assert np.abs(after - before).max() <= 2e-2 * np.abs(before).max()


def test_from_nm_refuses_other_patterns():
  matrix = jsparse.NM.fromdense(jnp.ones((16, 16), jnp.bfloat16), n=1, m=4)
  with pytest.raises(ValueError, match="matrix must be 2:4 for cuSPARSELt, got 1:4"):
    cusparselt.from_nm(matrix)


def test_library_is_named_by_its_source(tmp_path, monkeypatch):
  # The installed package (what CI imports) holds no csrc/: the source is made here.
  monkeypatch.delenv("JSPARSE_CUDA_LIB_DIR", raising=False)
  monkeypatch.setenv("JSPARSE_CUSPARSELT_DIR", str(tmp_path))
  source = tmp_path / "cusparselt_ffi.cc"
  monkeypatch.setattr(cusparselt, "SOURCE", source)
  source.write_text("// one version")
  first = cusparselt.library_path()
  assert first.parent == tmp_path and first.name.startswith("libjsparse_cusparselt-")
  source.write_text("// another version")
  assert cusparselt.library_path() != first
  monkeypatch.setattr(cusparselt, "SOURCE", tmp_path / "missing.cc")
  with pytest.raises(FileNotFoundError, match="source checkout"):
    cusparselt.library_path()
