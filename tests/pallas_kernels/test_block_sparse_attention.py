"""Block-sparse attention kernel vs a float64 dense reference with the block mask applied.

Runs in Pallas interpret mode on the CPU and compiled (Triton) when JAX sees a GPU. The
interpreter fills every output with NaN before the kernel runs, so a finite result equal to the
reference (zeros included, for rows with no visible key) shows that every element was written.
Each case is one compilation (seconds in interpret mode), so each covers several features.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import pallas as pl

from pallas_kernels import _common, block_sparse_attention as bsa

ON_GPU = jax.default_backend() == "gpu"
INTERPRET = not ON_GPU
reference = jax.jit(bsa.reference_fn, static_argnames=("block_size", "causal", "scale"))
TOLERANCE = {jnp.float32: 2e-5, jnp.float16: 4e-3, jnp.bfloat16: 3e-2}


@dataclasses.dataclass(frozen=True)
class Case:
  batch: int
  q_len: int
  kv_len: int
  heads: int
  kv_heads: int
  head_dim: int
  block_size: tuple[int, int]
  mask: str  # "random", "dense", "local", "empty"
  per_head_mask: bool
  causal: bool
  dtype: type
  config: bsa.AttentionConfig | None = None
  empty_query_block: bool = False
  empty_head: bool = False
  precomputed_bounds: bool = False  # bounds from bsa.tile_bounds, as a caller caching them
  scale: float | None = None  # None: 1/sqrt(head_dim)


def compact_lists(dense: np.ndarray, rng: np.random.Generator):
  """(indices, counts) of a boolean [Hm, nqb, nkb] block mask; padding entries random in range."""
  counts = dense.sum(-1).astype(np.int32)
  max_kept = max(1, int(counts.max()))
  indices = rng.integers(0, dense.shape[-1], (*dense.shape[:2], max_kept)).astype(np.int32)
  for head, row in np.ndindex(*dense.shape[:2]):
    kept = np.flatnonzero(dense[head, row])
    indices[head, row, :kept.size] = kept
  return jnp.asarray(indices), jnp.asarray(counts)


def block_mask(case: Case, rng: np.random.Generator) -> np.ndarray:
  bq, bk = case.block_size
  shape = (case.heads if case.per_head_mask else 1, -(-case.q_len // bq), -(-case.kv_len // bk))
  if case.mask == "random":
    dense = rng.random(shape) < 0.5
  elif case.mask == "dense":
    dense = np.ones(shape, bool)
  elif case.mask == "local":  # two key blocks ending at each query block's last position
    last_key = (np.arange(shape[1]) * bq + bq - 1 + case.kv_len - case.q_len) // bk
    key_block = np.arange(shape[2])
    band = (key_block[None, :] <= last_key[:, None]) & (key_block[None, :] > last_key[:, None] - 2)
    dense = np.broadcast_to(band, shape).copy()
  elif case.mask == "empty":
    dense = np.zeros(shape, bool)
  else:
    raise ValueError(case.mask)
  if case.empty_query_block:
    dense[:, rng.integers(shape[1])] = False
  if case.empty_head:
    dense[rng.integers(shape[0])] = False
  return dense


def draw_qkv(rng: np.random.Generator, case) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Random q [B, Sq, Hq, D] and k, v [B, Sk, Hkv, D] in the case's dtype."""
  def draw(seq, heads):
    return jnp.asarray(rng.standard_normal((case.batch, seq, heads, case.head_dim)), case.dtype)
  return draw(case.q_len, case.heads), draw(case.kv_len, case.kv_heads), draw(
      case.kv_len, case.kv_heads)


def check_against_reference(out, q, k, v, indices, counts, case, seed: int):
  """``out`` (a kernel's attention) against the float64 reference with the case's mask: shape,
  dtype, every element written (finite) and within the dtype's tolerance. Returns both as
  float64 NumPy arrays."""
  expected = reference(*(x.astype(jnp.float64) for x in (q, k, v)), indices, counts,
                       block_size=case.block_size, causal=case.causal, scale=case.scale)
  assert out.shape == q.shape and out.dtype == q.dtype
  out = np.asarray(out.astype(jnp.float64))
  assert np.isfinite(out).all(), f"seed {seed}: unwritten or non-finite outputs"
  tol = TOLERANCE[case.dtype]
  np.testing.assert_allclose(out, np.asarray(expected), atol=tol, rtol=tol,
                             err_msg=f"seed {seed}, {case}")
  return out, np.asarray(expected)


def run_case(case: Case, seed: int):
  rng = np.random.default_rng(seed)
  indices, counts = compact_lists(block_mask(case, rng), rng)
  q, k, v = draw_qkv(rng, case)
  bounds = None
  if case.precomputed_bounds:
    bounds = bsa.tile_bounds(indices, counts, q_len=case.q_len, kv_len=case.kv_len,
                             block_size=case.block_size, config=case.config, causal=case.causal)
  out = bsa.kernel_fn(q, k, v, indices, counts, block_size=case.block_size, causal=case.causal,
                      scale=case.scale, config=case.config, bounds=bounds, interpret=INTERPRET)
  return check_against_reference(out, q, k, v, indices, counts, case, seed)


CASES = {
    # GQA, per-head random mask, causal with Sq > Sk (the first 30 queries see no key), lengths
    # not multiples of the blocks, 2 key sub-tiles per mask block, an all-empty query block,
    # tiles launched over groups of 4 of the 8 (batch, head) pairs.
    "prefill_gqa_causal_ragged_bf16": Case(
        2, 100, 70, 4, 2, 64, (32, 32), "random", True, True, jnp.bfloat16,
        config=bsa.AttentionConfig(block_q=32, block_k=16, head_group=4),
        empty_query_block=True),
    # MQA, one shared fully dense mask, non-causal, Sq != Sk, head dim 128, a negative scale
    # (applied before the row max; positive scales are folded into exp2's argument).
    "prefill_mqa_dense_f16_d128": Case(1, 48, 80, 2, 1, 128, (16, 32), "dense", False, False,
                                       jnp.float16, scale=-0.1),
    # Fully local mask, causal with Sq < Sk (bottom-right aligned), query tile half a block,
    # tile bounds computed once outside the kernel call.
    "prefill_local_causal_offset_f32": Case(
        1, 40, 72, 2, 2, 16, (32, 16), "local", False, True, jnp.float32,
        config=bsa.AttentionConfig(block_q=16, block_k=16), precomputed_bounds=True),
    # Decoding: 5 queries, long ragged cache, split-K over 3 programs, GQA, one head with no kept
    # block (all its rows 0), head groups of 6 reduced to gcd(6, 2 * 4) = 2.
    "decode_splitk_gqa_causal_bf16": Case(
        2, 5, 300, 4, 2, 32, (16, 32), "random", True, True, jnp.bfloat16,
        config=bsa.AttentionConfig(block_q=16, block_k=32, num_splits=3, head_group=6),
        empty_head=True),
    # One query, nothing kept anywhere: exactly zeros (default decode config).
    "decode_one_row_empty_f32": Case(1, 1, 64, 2, 1, 32, (16, 16), "empty", False, False,
                                     jnp.float32),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_float64_reference(name):
  seed = int(np.random.default_rng().integers(2**31))
  out, expected = run_case(CASES[name], seed)
  case = CASES[name]
  if case.mask == "empty" or case.empty_head or case.empty_query_block:
    assert (expected == 0).all(axis=-1).any(), "the case was meant to have rows with no key"
  if case.mask == "empty":
    assert (out == 0).all()


GPU_CASES = [
    Case(2, 1000, 1000, 8, 2, head_dim, block_size, mask, True, causal, jnp.bfloat16)
    for head_dim in (64, 128)
    for block_size, mask, causal in (((64, 64), "random", False), ((128, 128), "local", True))
] + [
    Case(2, 1000, 1200, 4, 4, 128, (64, 64), "random", True, True, jnp.float16),
    Case(1, 16, 8192 + 37, 16, 16, 128, (16, 64), "random", True, True, jnp.bfloat16),
    Case(1, 1, 8192, 16, 4, 64, (16, 128), "random", False, False, jnp.bfloat16),
    # The benchmark's non-causal lines: DEFAULT_TABLE's prefill configs, tile bounds cached.
    Case(2, 1000, 1000, 8, 2, 64, (128, 128), "random", True, False, jnp.bfloat16,
         config=bsa.DEFAULT_TABLE.prefill_small_head, precomputed_bounds=True),
    Case(2, 1000, 1000, 8, 2, 128, (128, 128), "random", True, False, jnp.bfloat16,
         config=bsa.DEFAULT_TABLE.prefill_large_head, precomputed_bounds=True),
    # float32 at the tables' 16-bit tiles would ask for 384 KiB of shared memory (causal, head
    # dim 128, 128 x 128 blocks: the sharded benchmark's case); default_config fits it.
    Case(1, 512, 512, 4, 2, 128, (128, 128), "local", True, True, jnp.float32),
    Case(1, 512, 512, 4, 4, 256, (128, 128), "random", True, False, jnp.float32),
]


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(len(GPU_CASES)))
def test_kernel_on_gpu_larger_shapes(index):
  """Default configs at the benchmark's block sizes and head dims (compiled, GPU only)."""
  run_case(GPU_CASES[index], int(np.random.default_rng().integers(2**31)))


@pytest.mark.parametrize("q_len, kv_len, block_size, block_q, block_k, causal, heads", [
    (100, 70, (32, 32), 32, 16, True, 3),  # Sq > Sk, ragged keys, 2 sub-tiles per block
    (40, 72, (32, 16), 16, 16, True, 1),  # Sq < Sk, query tile half a block
    (48, 80, (16, 32), 16, 32, False, 2),  # ragged keys without causal
    (5, 300, (16, 32), 16, 16, True, 2),  # one query tile, long ragged list
])
def test_in_kernel_prefixes_match_tile_bounds(q_len, kv_len, block_size, block_q, block_k,
                                             causal, heads):
  """``_tile_prefixes`` (what each program counts) equals the XLA ``tile_bounds``, on random
  lists with empty rows and a max_kept that is not a power of two (a masked vector load)."""
  rng = np.random.default_rng()
  config = bsa.AttentionConfig(block_q=block_q, block_k=block_k)
  bq, bk = block_size
  dense = rng.random((heads, -(-q_len // bq), -(-kv_len // bk))) < 0.6
  dense[:, 0] = False
  dense[0, -1, :3] = True  # max_kept >= 3
  indices, counts = compact_lists(dense, rng)
  q_tiles = -(-q_len // block_q)

  def kernel(indices_ref, counts_ref, out_ref):
    tile, head = pl.program_id(0), pl.program_id(1)
    row_start = tile * block_q
    full, visible = bsa._tile_prefixes(
        indices_ref, counts_ref, head, row_start // bq, first_row=row_start,
        last_row=jnp.minimum(row_start + block_q, q_len) - 1, block_k=block_k, bk=bk,
        causal=causal, q_len=q_len, kv_len=kv_len)
    out_ref[...] = jnp.stack([full, visible])

  whole = lambda a: pl.BlockSpec(a.shape, lambda *_: (0,) * a.ndim)
  got = pl.pallas_call(
      kernel, grid=(q_tiles, heads), in_specs=[whole(indices), whole(counts)],
      out_specs=pl.BlockSpec((None, None, 2), lambda t, h: (h, t, 0)),
      out_shape=jax.ShapeDtypeStruct((heads, q_tiles, 2), jnp.int32), interpret=True,
  )(indices, counts)
  expected = bsa.tile_bounds(indices, counts, q_len=q_len, kv_len=kv_len, block_size=block_size,
                             config=config, causal=causal)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_default_config_splits_decoding_and_tiles_prefill():
  decode = bsa.default_config(batch=1, num_heads=16, q_len=4, head_dim=128, block_size=(64, 64),
                              max_kept=100)
  assert decode.block_q == 16 and decode.num_splits > 1
  tiles = 100 * (64 // decode.block_k)
  per_split = -(-tiles // decode.num_splits)
  assert (decode.num_splits - 1) * per_split < tiles, "a split would get no kept block"
  prefill = bsa.default_config(batch=4, num_heads=16, q_len=8192, head_dim=64,
                               block_size=(128, 128), max_kept=64)
  assert prefill.num_splits == 1 and 128 % prefill.block_q == 0 and 128 % prefill.block_k == 0
  few_blocks = bsa.default_config(batch=64, num_heads=64, q_len=1, head_dim=64,
                                  block_size=(16, 16), max_kept=2)
  assert few_blocks.num_splits <= 2


@pytest.mark.parametrize("limit_kib", [99, 163, 227])
@pytest.mark.parametrize("itemsize", [2, 4])
def test_default_config_fits_the_shared_memory(itemsize, limit_kib):
  """Every default config's K/V ring fits the limit less the margin, with the 16-bit H100 pick's
  query tile (so ``tile_bounds`` keeps its shape) and a key tile dividing the mask's block."""
  limit = limit_kib * 1024
  for head_dim in (16, 32, 64, 128, 256):
    for block_size, q_len in (((128, 128), 4096), ((64, 64), 4096), ((16, 64), 4),
                              ((128, 128), 1)):
      for causal in (False, True):
        arguments = dict(batch=2, num_heads=8, q_len=q_len, head_dim=head_dim,
                         block_size=block_size, max_kept=32, num_kv_blocks=32, causal=causal)
        config = bsa.default_config(**arguments, itemsize=itemsize, shared_memory=limit)
        hopper_16_bit = bsa.default_config(**arguments, itemsize=2,
                                           shared_memory=_common.HOPPER_SHARED_MEMORY_BYTES)
        assert (bsa.kv_ring_bytes(config, head_dim, itemsize)
                <= limit - bsa.SHARED_MEMORY_MARGIN), (arguments, config)
        assert config.block_q == hopper_16_bit.block_q
        assert block_size[1] % config.block_k == 0 and config.num_stages >= 2
        fits = (bsa.kv_ring_bytes(hopper_16_bit, head_dim, itemsize)
                <= limit - bsa.SHARED_MEMORY_MARGIN)
        assert config == hopper_16_bit or not fits, "a config that fits is left as it is"


def test_float32_causal_head_dim_128_gets_a_smaller_ring():
  """The launch that failed on an H200 (jax 0.11.2: "Shared memory size limit exceeded:
  requested 393216, available: 232448"): float32, head dim 128, causal, 128 x 128 blocks."""
  arguments = dict(batch=1, num_heads=32, q_len=4096, head_dim=128, block_size=(128, 128),
                   max_kept=9, num_kv_blocks=32, causal=True)
  table = bsa.default_config(**arguments, shared_memory=_common.HOPPER_SHARED_MEMORY_BYTES)
  assert bsa.kv_ring_bytes(table, 128, 4) == 393216
  fitted = bsa.default_config(**arguments, itemsize=4, shared_memory=232448)
  assert (fitted.num_stages, fitted.block_k, fitted.block_q) == (2, 64, 128)


def test_default_config_names_a_bad_itemsize_or_too_little_shared_memory():
  arguments = dict(batch=1, num_heads=8, q_len=4096, head_dim=128, block_size=(128, 128),
                   max_kept=8, num_kv_blocks=32)
  with pytest.raises(ValueError, match="itemsize must be a dtype's size in bytes"):
    bsa.default_config(**arguments, itemsize=3)
  with pytest.raises(ValueError, match="shared_memory=20480 bytes is too small for head dim 128"):
    bsa.default_config(**arguments, itemsize=4, shared_memory=20 * 1024)


def test_config_table_picks_sparse_entry_by_kept_fraction():
  sparse = bsa.AttentionConfig(block_q=64, block_k=64, num_warps=4, num_stages=4)
  large = bsa.AttentionConfig(block_q=128, block_k=128, num_warps=8, num_stages=3)
  causal = bsa.AttentionConfig(block_q=64, block_k=128, num_warps=4, num_stages=2)
  table = bsa.ConfigTable(prefill_small_head=bsa.DEFAULT_TABLE.prefill_small_head,
                          prefill_large_head=large, sparse_large_head=sparse,
                          causal_large_head=causal, sparse_below=0.1, decode_programs=1024)
  pick = lambda head_dim, max_kept, block=(128, 128), q_len=8192, is_causal=False: (
      bsa.default_config(batch=4, num_heads=16, q_len=q_len, head_dim=head_dim, block_size=block,
                         max_kept=max_kept, num_kv_blocks=64, causal=is_causal, table=table))
  assert pick(128, 64) == large
  assert pick(128, 6) == sparse  # 6 / 64 <= 0.1
  assert pick(128, 7) == large
  assert pick(128, 64, is_causal=True) == pick(128, 6, is_causal=True) == causal
  assert pick(64, 64, is_causal=True) == bsa.DEFAULT_TABLE.prefill_small_head  # no causal entry
  assert pick(64, 3) == bsa.DEFAULT_TABLE.prefill_small_head  # no sparse entry at head dim 64
  assert pick(128, 64, block=(64, 32)) == dataclasses.replace(large, block_q=64, block_k=32)
  decode = pick(128, 512, block=(16, 64), q_len=1)
  assert decode.num_splits == 1024 // 64 and decode.num_stages == table.decode_stages
  with pytest.raises(ValueError, match="sparse_below must be in"):
    dataclasses.replace(table, sparse_below=1.5)


def test_config_rejects_tiles_that_triton_cannot_use():
  with pytest.raises(ValueError, match="block_q must be a power of two"):
    bsa.AttentionConfig(block_q=24, block_k=16)
  with pytest.raises(ValueError, match="block_k must be a power of two >= 16"):
    bsa.AttentionConfig(block_q=16, block_k=8)
  with pytest.raises(ValueError, match="num_splits"):
    bsa.AttentionConfig(block_q=16, block_k=16, num_splits=0)
  with pytest.raises(ValueError, match="head_group must be >= 1"):
    bsa.AttentionConfig(block_q=16, block_k=16, head_group=0)


@pytest.mark.parametrize("change, message", [
    (dict(q_shape=(1, 32, 3, 16)), "multiple of k's heads"),
    (dict(head_dim=24), "head dim must be a power of two"),
    (dict(dtype=jnp.int32), "must share one dtype"),
    (dict(block_size=(16, 24)), "block_size must be two powers of two"),
    (dict(indices_shape=(1, 3, 2)), r"kv_block_indices must be \[Hm, ceil\(Sq/bq\)=2"),
    (dict(indices_shape=(3, 2, 2)), "mask heads must be 1 or Hq=2"),
    (dict(indices_shape=(1, 2, 0)), r"kept-list width \(last dim\) must be at least 1"),
    (dict(counts_shape=(1, 3)), "kv_block_counts must be"),
    (dict(index_dtype=jnp.int64), "kv_block_indices must be int32"),
    (dict(config=bsa.AttentionConfig(block_q=16, block_k=32)), "does not tile block_size"),
    (dict(bounds=jnp.zeros((1, 2, 2), jnp.int64)), r"bounds must be int32 \(1, 2, 2\)"),
    (dict(bounds=jnp.zeros((1, 3, 2), jnp.int32)), r"bounds must be int32 \(1, 2, 2\)"),
])
def test_bad_arguments_raise_naming_them(change, message):
  head_dim = change.get("head_dim", 16)
  dtype = change.get("dtype", jnp.float32)
  q = jnp.ones(change.get("q_shape", (1, 32, 2, head_dim)), dtype)
  k = jnp.ones((1, 32, 2 if "q_shape" in change else 1, head_dim), dtype)
  indices = jnp.zeros(change.get("indices_shape", (1, 2, 2)),
                      change.get("index_dtype", jnp.int32))
  counts = jnp.ones(change.get("counts_shape", indices.shape[:2]), jnp.int32)
  with pytest.raises((ValueError, TypeError), match=message):
    bsa.kernel_fn(q, k, k, indices, counts, block_size=change.get("block_size", (16, 16)),
                  config=change.get("config"), bounds=change.get("bounds"), interpret=True)


def test_arrays_past_int32_offsets_are_refused():
  big = jax.ShapeDtypeStruct((2, 2**16, 128, 128), jnp.bfloat16)  # 2**31 elements
  small = jax.ShapeDtypeStruct((2, 16, 128, 128), jnp.bfloat16)
  indices = jax.ShapeDtypeStruct((1, 1, 1), jnp.int32)
  counts = jax.ShapeDtypeStruct((1, 1), jnp.int32)
  with pytest.raises(ValueError, match=r"k must have fewer than 2\*\*31 elements"):
    bsa.check_arguments(small, big, big, indices, counts, (16, 16))


def test_reference_matches_numpy_softmax_with_mask():
  """The reference itself, against a loop over rows in float64 NumPy (GQA, causal offset)."""
  rng = np.random.default_rng()
  q, k, v = (rng.standard_normal(s) for s in ((1, 20, 4, 8), (1, 36, 2, 8), (1, 36, 2, 8)))
  dense = rng.random((4, 2, 3)) < 0.6
  indices, counts = compact_lists(dense, rng)
  out = reference(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), indices, counts,
                         block_size=(16, 16), causal=True, scale=0.3)
  expected = np.zeros_like(q)
  for head, row in np.ndindex(4, 20):
    keys = [j for j in range(36) if dense[head, row // 16, j // 16] and j <= row + 16]
    if keys:
      scores = 0.3 * k[0, keys, head // 2] @ q[0, row, head]
      weights = np.exp(scores - scores.max())
      expected[0, row, head] = weights @ v[0, keys, head // 2] / weights.sum()
  np.testing.assert_allclose(np.asarray(out), expected, atol=1e-12)


def test_registered_wrapper_accepts_kernel_calls_and_explains_refusals():
  import jsparse._gpu.attention as wrapper
  from jsparse.ops.attention import AttentionLayout

  def avals(dtype=jnp.bfloat16, head_dim=64, heads=4):
    return (jax.ShapeDtypeStruct((2, 100, heads, head_dim), dtype),
            jax.ShapeDtypeStruct((2, 100, 2, head_dim), dtype),
            jax.ShapeDtypeStruct((2, 100, 2, head_dim), dtype),
            jax.ShapeDtypeStruct((1, 4, 3), jnp.int32), jax.ShapeDtypeStruct((1, 4), jnp.int32))

  params = dict(layout=AttentionLayout(block_size=(32, 32), causal=True, scale=0.1),
                impl="pallas")
  assert wrapper._supports(avals(), params) is True
  assert "dtype" in wrapper._supports(avals(dtype=jnp.float64), params)
  assert "head dim" in wrapper._supports(avals(head_dim=96), params)
  assert "multiple of k's heads" in wrapper._supports(avals(heads=3), params)
  small_blocks = dict(params, layout=AttentionLayout(block_size=(8, 32), causal=True, scale=0.1))
  assert "block_size" in wrapper._supports(avals(), small_blocks)


def kernel_registered_here() -> bool:
  from jsparse.ops import registry
  platform = "cuda" if ON_GPU else jax.default_backend()
  return bool(registry.registered_kernels("attention", "block", platform))


@pytest.mark.skipif(not kernel_registered_here(), reason="the attention kernel is registered on "
                    "the CPU only with JSPARSE_PALLAS_INTERPRET=1 set before importing jsparse")
def test_public_op_runs_the_kernel_and_matches_reference():
  """``jsparse.block_sparse_attention(impl="pallas")`` (interpret mode on the CPU), jitted, GQA."""
  import jsparse
  rng = np.random.default_rng()
  q = jnp.asarray(rng.standard_normal((1, 70, 4, 32)), jnp.float16)
  k, v = (jnp.asarray(rng.standard_normal((1, 90, 2, 32)), jnp.float16) for _ in range(2))
  mask = jsparse.BlockMask.from_dense(rng.random((4, 3, 3)) < 0.6, block_size=(32, 32))

  def attend(impl):
    return jax.jit(lambda q, k, v, mask: jsparse.block_sparse_attention(
        q, k, v, mask, causal=True, scale=0.2, impl=impl))(q, k, v, mask)
  out = np.asarray(attend("pallas").astype(jnp.float64))
  np.testing.assert_allclose(out, np.asarray(attend("reference").astype(jnp.float64)),
                             atol=TOLERANCE[jnp.float16], rtol=TOLERANCE[jnp.float16])


@pytest.mark.parametrize("q_shape, kv_shape, mask_shape, block_size, causal, head_group", [
    ((2, 1000, 8, 128), (2, 1000, 2, 128), (8, 8, 8), (128, 128), True, 1),  # prefill, GQA
    ((2, 1000, 8, 64), (2, 1000, 8, 64), (8, 8, 7), (128, 128), True, 8),  # max_kept 7, groups
    ((1, 16, 16, 128), (1, 8229, 16, 128), (16, 1, 129), (16, 64), True, 1),  # split-K decoding
])
def test_lowers_to_triton_ir_without_a_gpu(monkeypatch, q_shape, kv_shape, mask_shape, block_size,
                                           causal, head_group):
  """The Triton lowering (jaxpr -> Triton MLIR) of the compiled path, on an H100 description:
  catches operations, shapes and dtypes that interpret mode accepts but Triton does not."""
  gpu_info = pytest.importorskip("jax._src.pallas.triton.gpu_info")
  if not hasattr(gpu_info, "get_gpu_info_from_version"):
    pytest.skip("this jax has no GPU description to lower against")
  h100 = gpu_info.get_gpu_info_from_version(gpu_info.GpuVersion.H100)
  monkeypatch.setattr(gpu_info, "get_gpu_info", lambda: h100)
  q = jax.ShapeDtypeStruct(q_shape, jnp.bfloat16)
  kv = jax.ShapeDtypeStruct(kv_shape, jnp.bfloat16)
  indices = jax.ShapeDtypeStruct(mask_shape, jnp.int32)
  counts = jax.ShapeDtypeStruct(mask_shape[:2], jnp.int32)
  config = None if head_group == 1 else bsa.AttentionConfig(
      block_q=128, block_k=128, num_warps=4, num_stages=3, head_group=head_group)
  attend = jax.jit(lambda *args: bsa.kernel_fn(*args, block_size=block_size, causal=causal,
                                               config=config))
  lowered = attend.trace(q, kv, kv, indices, counts).lower(lowering_platforms=("cuda",))
  assert "triton" in lowered.as_text()
