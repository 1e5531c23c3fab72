"""Every public op's default GPU launch at the benchmarks' sizes, in every dtype it takes.

The kernel tests check each kernel on small, ragged shapes; the tuning tables behind the
default launches were tuned at the benchmarks' sizes in one dtype (mostly bfloat16). A launch
that fits in bfloat16 can fail in float32 (the Triton attention's causal head-dim-128 tiles
asked for 384 KiB of shared memory in float32, found by the sharded benchmark on an H200). So
here each op runs through ``jsparse``'s public functions (``impl="auto"``: whatever the GPU
path picks) at LLM-layer sizes, decoding to prefill, float32 / bfloat16 / float16, against a
float64 product on the host. Skipped where JAX sees no GPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse

pytestmark = pytest.mark.gpu

DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)
# Relative max error against float64: float32 (TF32 is not used by these kernels: 1e-4 leaves
# room for summation order over K = 4096), 16-bit outputs (rounding of the result: 2^-8).
TOLERANCE = {jnp.dtype(jnp.float32): 1e-4, jnp.dtype(jnp.bfloat16): 2e-2,
             jnp.dtype(jnp.float16): 5e-3}


def relative_error(out, expected) -> float:
  out = np.asarray(jnp.asarray(out, jnp.float32), np.float64)
  return float(np.abs(out - expected).max() / np.abs(expected).max())


def sparse_weight(rng, shape, density, dtype, block=None):
  """[M, K] of ``dtype`` with ``density`` of its entries (or of its ``block``s) nonzero, normal
  values; as float64 too."""
  if block is None:
    keep = rng.random(shape) < density
  else:
    bm, bk = block
    keep = np.kron(rng.random((shape[0] // bm, shape[1] // bk)) < density, np.ones(block, bool))
  w = np.where(keep, rng.standard_normal(shape), 0.0).astype(np.float32)
  w = np.asarray(jnp.asarray(w, dtype).astype(jnp.float32), np.float64)
  return jnp.asarray(w, dtype), w


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape", [(4096, 4096), (14336, 4096)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_spmm_defaults_at_layer_sizes(shape, dtype):
  """CSR at 90%, Tiled at 70%, BSR at block density 0.2, N:M 2:4; N from decoding to prefill."""
  rng = np.random.default_rng(shape[0])
  cases = []
  w, w64 = sparse_weight(rng, shape, 0.1, dtype)
  cases.append(("csr", jsparse.CSR.fromdense(w), w64))
  w, w64 = sparse_weight(rng, shape, 0.3, dtype)
  cases.append(("tiled", jsparse.Tiled.fromdense(w), w64))
  for block in ((64, 64), (128, 64)):
    w, w64 = sparse_weight(rng, shape, 0.2, dtype, block)
    cases.append((f"bsr{block[0]}x{block[1]}", jsparse.BSR.fromdense(w, block_shape=block), w64))
  nm = jsparse.NM.fromdense(jnp.asarray(rng.standard_normal(shape), dtype), n=2, m=4)
  cases.append(("nm2:4", nm, np.asarray(nm.todense().astype(jnp.float32), np.float64)))
  failures = []
  for n in (1, 8, 128, 1024):
    x64 = np.asarray(jnp.asarray(rng.standard_normal((shape[1], n)), dtype).astype(jnp.float32),
                     np.float64)
    x = jnp.asarray(x64, dtype)
    for name, matrix, dense in cases:
      expected = dense @ x64
      try:
        out = jax.block_until_ready(jax.jit(jsparse.spmm)(matrix, x))
        error = relative_error(out, expected)
        if out.shape != expected.shape or not error <= TOLERANCE[jnp.dtype(dtype)]:
          failures.append(f"{name} N={n}: shape {out.shape}, relative error {error:.2e}")
      except Exception as failure:  # noqa: BLE001 - collect every failing launch
        failures.append(f"{name} N={n}: {type(failure).__name__}: {str(failure)[:300]}")
  assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_sddmm_and_spmv_defaults(dtype):
  rng = np.random.default_rng(7)
  w, w64 = sparse_weight(rng, (4096, 4096), 0.1, dtype)
  csr = jsparse.CSR.fromdense(w)
  failures = []
  v64 = np.asarray(jnp.asarray(rng.standard_normal(4096), dtype).astype(jnp.float32), np.float64)
  out = jax.jit(jsparse.spmv)(csr, jnp.asarray(v64, dtype))
  if not relative_error(out, w64 @ v64) <= TOLERANCE[jnp.dtype(dtype)]:
    failures.append(f"spmv: relative error {relative_error(out, w64 @ v64):.2e}")
  rows, cols = np.nonzero(w64)
  for inner in (32, 128, 1024):
    x64, y64 = (np.asarray(jnp.asarray(rng.standard_normal((4096, inner)), dtype)
                           .astype(jnp.float32), np.float64) for _ in range(2))
    expected = (x64 @ y64.T)[rows, cols]
    try:
      sampled = jax.jit(jsparse.sddmm)(csr, jnp.asarray(x64, dtype), jnp.asarray(y64, dtype))
      values = np.asarray(jnp.asarray(sampled.data, jnp.float32), np.float64)[:rows.size]
      error = float(np.abs(values - expected).max() / np.abs(expected).max())
      if not error <= TOLERANCE[jnp.dtype(dtype)] * (10 if inner == 1024 else 1):
        failures.append(f"sddmm D={inner}: relative error {error:.2e}")
    except Exception as failure:  # noqa: BLE001
      failures.append(f"sddmm D={inner}: {type(failure).__name__}: {str(failure)[:300]}")
  assert not failures, "\n".join(failures)


def attention_reference(q, k, v, mask, causal):
  return np.asarray(jsparse.block_sparse_attention(
      *(jnp.asarray(a, jnp.float32) for a in (q, k, v)), mask, causal=causal,
      impl="reference"), np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("head_dim", [64, 128, 256])
def test_attention_defaults(head_dim, dtype):
  """Prefill (causal and local-global masks of 128x128 blocks) and decoding (1 and 16 queries
  against 8192 keys), grouped-query heads."""
  rng = np.random.default_rng(head_dim)
  failures = []
  draw = lambda *shape: jnp.asarray(rng.standard_normal(shape), dtype)  # noqa: E731
  cases = []
  for causal, mask in ((True, jsparse.BlockMask.causal(2048, 2048, block_size=(128, 128))),
                       (False, jsparse.BlockMask.local_global(2048, 2048, block_size=(128, 128),
                                                              window=512))):
    cases.append((f"prefill causal={causal}", 2048, 2048, mask, causal))
  for queries in (1, 16):
    keep = rng.random((1, 1, 8192 // 128)) < 0.25
    keep[..., 0] = True
    mask = jsparse.BlockMask.from_dense(keep, block_size=(16, 128))
    cases.append((f"decode q={queries}", queries, 8192, mask, False))
  for name, q_len, kv_len, mask, causal in cases:
    q, k, v = draw(2, q_len, 8, head_dim), draw(2, kv_len, 2, head_dim), draw(2, kv_len, 2,
                                                                              head_dim)
    try:
      out = jax.jit(lambda q, k, v, mask=mask, causal=causal: jsparse.block_sparse_attention(
          q, k, v, mask, causal=causal))(q, k, v)
      error = relative_error(out, attention_reference(q, k, v, mask, causal))
      if not error <= TOLERANCE[jnp.dtype(dtype)] * 2:
        failures.append(f"{name}: relative error {error:.2e}")
    except Exception as failure:  # noqa: BLE001
      failures.append(f"{name}: {type(failure).__name__}: {str(failure)[:300]}")
  assert not failures, "\n".join(failures)
