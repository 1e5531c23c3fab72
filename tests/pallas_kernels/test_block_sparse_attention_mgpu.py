"""Mosaic GPU block-sparse attention kernel vs a float64 dense reference with the block mask.

Runs in Mosaic GPU interpret mode on the CPU (three simulated warpgroups per program, barriers
and TMA copies included; 2-5 s per small case) and compiled when JAX sees a GPU. The
interpreter differs from the compiled kernel in one place: the P @ V product is a plain dot of
the shared-memory V tile instead of a wgmma with P in registers (``_attention_kernel``), so the
compiled path is checked by the GPU cases and, without a GPU, up to the Mosaic GPU MLIR by
``test_lowers_to_mosaic_gpu_without_a_gpu``. Outputs start as NaN in the interpreter, so a
finite result equal to the reference shows that every element was written. The interpreter also
checks the barrier protocol (every phase observed by each thread that waits on a barrier, no
arrival into a phase not yet observed). Its race detector is not used: it does not track wgmma
reads (jax 0.11.2), and it reports the interpret-only plain read of V before the memory
warpgroup's next TMA write into that slot as a cross-proxy race, which the compiled kernel (V
read by wgmma, as in attention_mgpu) does not have.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels import block_sparse_attention_mgpu as mgpu_attention
from tests.pallas_kernels.test_block_sparse_attention import (check_against_reference,
                                                              compact_lists, draw_qkv)

ON_GPU = jax.default_backend() == "gpu"
INTERPRET = not ON_GPU
Config = mgpu_attention.MgpuAttentionConfig


@dataclasses.dataclass(frozen=True)
class Case:
  batch: int
  q_len: int
  kv_len: int
  heads: int
  kv_heads: int
  head_dim: int
  block_size: tuple[int, int]
  density: float  # fraction of kept blocks (1.0: all, 0.0: none)
  per_head_mask: bool
  causal: bool
  dtype: type
  config: Config | None = None
  empty_query_block: bool = False
  scale: float | None = None  # None: 1/sqrt(head_dim)


def run_case(case: Case, seed: int):
  rng = np.random.default_rng(seed)
  bq, bk = case.block_size
  shape = (case.heads if case.per_head_mask else 1, case.q_len // bq, case.kv_len // bk)
  dense = rng.random(shape) < case.density
  if case.empty_query_block:
    dense[:, rng.integers(shape[1])] = False
  indices, counts = compact_lists(dense, rng)
  q, k, v = draw_qkv(rng, case)
  reason = mgpu_attention.supports(q, k, v, indices, counts, block_size=case.block_size,
                                   causal=case.causal, config=case.config)
  if reason is not True:  # e.g. causal on a CUDA runtime whose ptxas miscompiles it
    pytest.skip(f"supports() refuses the case: {reason}")
  out = mgpu_attention.kernel_fn(q, k, v, indices, counts, block_size=case.block_size,
                                 causal=case.causal, scale=case.scale, config=case.config,
                                 interpret=INTERPRET)
  # The Triton kernel's check (same reference function, same tolerances for bf16/f16).
  return check_against_reference(out, q, k, v, indices, counts, case, seed)


CASES = {
    # GQA (4 query heads on 2 kv heads), per-head random masks with an all-empty query block
    # (rows of zeros), two 64-key steps per 128-key mask block.
    "gqa_random_per_head_bf16_d64": Case(
        1, 256, 256, 4, 2, 64, (128, 128), 0.6, True, False, jnp.bfloat16,
        config=Config(block_q=64, block_kv=64), empty_query_block=True),
    # MQA, fully dense shared mask, Sq != Sk, head dim 128, a negative scale (applied before the
    # row max), three K/V slots.
    "mqa_dense_f16_d128_negative_scale": Case(
        1, 128, 384, 2, 1, 128, (128, 128), 1.0, False, False, jnp.float16,
        config=Config(block_q=64, block_kv=128, max_concurrent_steps=3), scale=-0.1),
    # Causal, Sq == Sk, 64-key steps: the first compute warpgroup's last visible step comes one
    # before the second's, so it releases that step's slots (the epilogue loop); dense mask.
    "causal_dense_bf16_d64_uneven_warpgroups": Case(
        1, 256, 256, 2, 2, 64, (128, 128), 1.0, True, True, jnp.bfloat16,
        config=Config(block_q=64, block_kv=64)),
    # Causal, Sq < Sk (bottom-right aligned), random per-head masks, head dim 128, 256-key
    # mask blocks in two steps each, the default 128-key steps.
    "causal_offset_random_f16_d128": Case(
        1, 128, 512, 2, 1, 128, (128, 256), 0.7, True, True, jnp.float16),
    # Causal, Sq > Sk: the first 128 queries see no key (zeros); 256-row mask blocks in
    # 128-row warpgroup tiles (with 64-key steps: 128 x 128 float32 scores would not fit the
    # registers beside the accumulator).
    "causal_more_queries_than_keys_bf16_d64": Case(
        1, 512, 256, 1, 1, 64, (256, 128), 1.0, False, True, jnp.bfloat16,
        config=Config(block_q=128, block_kv=64)),
    # Two query tiles a program (four tiles: two programs a head), 64-key steps in two slots:
    # the second tile's steps continue the first's slot and barrier phases; an empty query
    # block (a tile with no step between tiles with steps); random per-head masks, Sq > Sk.
    "two_tiles_a_program_bf16_d64": Case(
        1, 512, 256, 2, 1, 64, (128, 128), 0.4, True, False, jnp.bfloat16,
        config=Config(block_q=64, block_kv=64, tiles_per_program=2), empty_query_block=True),
    # Causal with all four tiles in one program, three slots (steps per tile not a multiple of
    # the slots), the early warpgroup's releases inside the tile loop.
    "causal_four_tiles_a_program_f16_d64": Case(
        1, 512, 512, 1, 1, 64, (128, 128), 0.7, True, True, jnp.float16,
        config=Config(block_q=64, block_kv=64, max_concurrent_steps=3, tiles_per_program=4)),
    # Four tiles a program at head dim 128 (Q double-buffered, O in a buffer of its own), one
    # 128-key step per kept block: tiles of 0-4 steps, fewer than the two slots in some, so the
    # memory warpgroup waits for the previous tile's Q to be consumed before loading the next.
    "four_tiles_few_steps_bf16_d128": Case(
        1, 512, 512, 2, 2, 128, (128, 128), 0.3, True, False, jnp.bfloat16,
        config=Config(tiles_per_program=4), empty_query_block=True),
    # The default launch at head dim 64 on a sparse mask: eight tiles a program (the kept lists
    # are short), some without a step between tiles with steps, so the warpgroups' schedule
    # phases and the deferred O stores carry across empty tiles; per-head masks.
    "eight_tiles_default_sparse_bf16_d64": Case(
        1, 1024, 512, 2, 1, 64, (128, 128), 0.25, True, False, jnp.bfloat16,
        empty_query_block=True),
    # Nothing kept anywhere: exactly zeros.
    "empty_f16_d64": Case(1, 128, 256, 2, 1, 64, (128, 128), 0.0, False, False, jnp.float16),
    # Nothing kept, two query tiles: the default launch runs both in one program (two tiles of
    # no step: the Q buffers and O stores still alternate).
    "empty_two_tiles_default_f16_d64": Case(1, 256, 256, 2, 1, 64, (128, 128), 0.0, False, False,
                                            jnp.float16),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_float64_reference(name):
  seed = int(np.random.default_rng().integers(2**31))
  case = CASES[name]
  out, expected = run_case(case, seed)
  if case.density == 0.0 or case.empty_query_block or case.q_len > case.kv_len:
    assert (expected == 0).all(axis=-1).any(), "the case was meant to have rows with no key"
  if case.density == 0.0:
    assert (out == 0).all()


GPU_CASES = [
    # The benchmark's shape class at its block sizes: default configs, both head dims.
    Case(2, 2048, 2048, 8, 2, head_dim, (128, 128), density, True, causal, jnp.bfloat16)
    for head_dim in (64, 128) for density, causal in ((0.3, False), (1.0, True), (0.5, True))
] + [
    Case(1, 1024, 1536, 4, 4, 128, (128, 128), 0.5, True, True, jnp.float16,
         empty_query_block=True),
    Case(2, 1024, 1024, 4, 1, 64, (256, 256), 0.4, False, False, jnp.bfloat16,
         config=Config(block_q=128, block_kv=64, max_concurrent_steps=3)),
    Case(1, 1024, 1024, 2, 2, 64, (128, 128), 1.0, True, True, jnp.bfloat16,
         config=Config(block_q=64, block_kv=64, max_concurrent_steps=4)),
    # Several query tiles a program: sparse GQA at head dim 64, causal at 128.
    Case(2, 2048, 2048, 8, 2, 64, (128, 128), 0.1, True, False, jnp.bfloat16,
         config=Config(tiles_per_program=4), empty_query_block=True),
    Case(1, 2048, 2048, 4, 4, 128, (128, 128), 0.5, True, True, jnp.bfloat16,
         config=Config(tiles_per_program=2)),
]


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(len(GPU_CASES)))
def test_kernel_on_gpu_larger_shapes(index):
  """Compiled (GPU only): default and non-default configs at larger shapes."""
  run_case(GPU_CASES[index], int(np.random.default_rng().integers(2**31)))


@pytest.mark.parametrize("head_dim, causal, dtype, tiles", [
    (64, False, jnp.bfloat16, 1), (128, True, jnp.float16, 1), (128, False, jnp.bfloat16, 1),
    (64, True, jnp.float16, 1), (64, False, jnp.bfloat16, 4), (128, True, jnp.float16, 2)])
def test_lowers_to_mosaic_gpu_without_a_gpu(head_dim, causal, dtype, tiles):
  """The compiled path's lowering (jaxpr -> Mosaic GPU MLIR: the wgmma with P in registers,
  scalar loads of the index table, the binary search): catches what interpret mode does not
  run. PTX generation happens only on a GPU."""
  q = jax.ShapeDtypeStruct((2, 1024, 4, head_dim), dtype)
  kv = jax.ShapeDtypeStruct((2, 1024, 2, head_dim), dtype)
  indices = jax.ShapeDtypeStruct((4, 8, 5), jnp.int32)
  counts = jax.ShapeDtypeStruct((4, 8), jnp.int32)
  config = dataclasses.replace(
      mgpu_attention.default_config(head_dim=head_dim, block_size=(128, 256)),
      tiles_per_program=tiles)
  attend = jax.jit(lambda *args: mgpu_attention.kernel_fn(*args, block_size=(128, 256),
                                                          causal=causal, config=config))
  lowered = attend.trace(q, kv, kv, indices, counts).lower(lowering_platforms=("cuda",))
  assert "mosaic_gpu" in lowered.as_text()


def test_step_count_binary_search_matches_searchsorted():
  """``_count_steps`` (the causal prefixes, run inside the kernel on scalars) against NumPy, on
  ascending key starts with a count below the list length and limits on, between and outside
  them."""
  rng = np.random.default_rng()
  for max_steps in (1, 2, 5, 64):
    starts = np.sort(rng.choice(1000, max_steps, replace=False)).astype(np.int32) * 64
    count = jax.jit(lambda num_steps, limit, starts=jnp.asarray(starts), max_steps=max_steps:
                    mgpu_attention._count_steps(lambda step: starts[step], num_steps, limit,
                                                max_steps=max_steps))
    for num_steps in {0, max_steps // 2, max_steps}:
      for limit in (-1, int(starts[0]), int(starts[-1]), int(starts[-1]) + 1,
                    int(rng.integers(0, 64_000))):
        expected = np.searchsorted(starts[:num_steps], limit, side="right")
        assert int(count(jnp.int32(num_steps), jnp.int32(limit))) == expected, (
            max_steps, num_steps, limit)


def test_default_config_follows_head_dim_and_mask_blocks():
  for head_dim in mgpu_attention.HEAD_DIMS:
    config = mgpu_attention.default_config(head_dim=head_dim, block_size=(128, 128))
    assert config == mgpu_attention.DEFAULT_CONFIGS[head_dim]
    assert config.smem_bytes(head_dim, 2) <= mgpu_attention.SMEM_BYTES
  assert mgpu_attention.default_config(head_dim=64, block_size=(128, 64)).block_kv == 64
  assert mgpu_attention.default_config(head_dim=64, block_size=(128, 384)).block_kv == 128
  assert mgpu_attention.default_config(head_dim=128, block_size=(128, 128)).tiles_per_program == 1


@pytest.mark.parametrize("head_dim, q_len, max_kept, block_size, causal, tiles", [
    (64, 8192, 3, (128, 128), False, 8),    # few K/V steps a tile at head dim 64
    (64, 8192, 8, (128, 128), False, 8),
    (64, 8192, 9, (128, 128), False, 2),
    (64, 8192, 5, (128, 256), False, 2),    # 5 kept blocks of two 128-key steps each
    (128, 8192, 3, (128, 128), False, 2),   # head dim 128: two at every density
    (64, 8192, 3, (128, 128), True, 1),     # causal: one
    (64, 384, 3, (128, 128), False, 1),     # three query tiles: no power of two > 1 divides
    (64, 512, 3, (128, 128), False, 4),     # four query tiles
    (64, 256, 1, (128, 128), False, 2),     # two (the empty_two_tiles_default case)
    (64, 8192, None, (128, 128), False, 2),  # width unknown
])
def test_default_tiles_per_program_follow_work_per_tile(head_dim, q_len, max_kept, block_size,
                                                        causal, tiles):
  config = mgpu_attention.default_config(head_dim=head_dim, block_size=block_size, q_len=q_len,
                                         max_kept=max_kept, causal=causal)
  assert config.tiles_per_program == tiles
  assert config.smem_bytes(head_dim, 2) <= mgpu_attention.SMEM_BYTES


@pytest.mark.parametrize("change, message", [
    (dict(q_len=-128), r"q_len must be a non-negative int or None, got -128"),
    (dict(q_len=8192.0), r"q_len must be a non-negative int or None, got 8192.0"),
    (dict(max_kept=0), r"max_kept must be a positive int \(the kept-list width\) or None, got 0"),
])
def test_default_config_names_a_bad_shape_argument(change, message):
  arguments = dict(head_dim=64, block_size=(128, 128), q_len=8192, max_kept=3) | change
  with pytest.raises(ValueError, match=message):
    mgpu_attention.default_config(**arguments)


def test_config_rejects_tiles_that_mosaic_cannot_use():
  with pytest.raises(ValueError, match="block_q must be a positive multiple of 64"):
    Config(block_q=32)
  with pytest.raises(ValueError, match="block_kv must be a positive multiple of 64"):
    Config(block_kv=96)
  with pytest.raises(ValueError, match="max_concurrent_steps must be >= 2"):
    Config(max_concurrent_steps=1)
  with pytest.raises(ValueError, match="tiles_per_program must be >= 1"):
    Config(tiles_per_program=0)


@pytest.mark.parametrize("change, message", [
    (dict(dtype=jnp.float32), "float16 or bfloat16"),
    (dict(head_dim=32), r"head dim must be one of \(64, 128\)"),
    (dict(q_len=192), r"q's sequence length must be a multiple of 2 \* config.block_q = 128"),
    (dict(kv_len=320), "k's sequence length must be a multiple of block_size"),
    (dict(q_len=384, config=Config(tiles_per_program=2)),
     r"query tiles of 128 rows must be a multiple of config.tiles_per_program = 2"),
    (dict(block_size=(64, 128)), r"block_size\[0\] must be a multiple of 2 \* config.block_q"),
    (dict(block_size=(128, 64), config=Config(block_kv=128)),
     r"block_size\[1\] must be a multiple of config.block_kv = 128"),
    (dict(head_dim=128, block_size=(256, 256),
          config=Config(block_q=128, block_kv=256, max_concurrent_steps=3)),
     "bytes of shared memory"),
    (dict(kv_heads=3), "multiple of k's heads"),  # the Triton kernel's checks come first
    (dict(index_dtype=jnp.int64), "kv_block_indices must be int32"),
    (dict(max_kept=0, config=Config()), r"kv_block_indices' kept-list width .* at least 1"),
])
def test_bad_arguments_are_refused_naming_them(change, message):
  head_dim = change.get("head_dim", 64)
  dtype = change.get("dtype", jnp.bfloat16)
  q_len, kv_len = change.get("q_len", 256), change.get("kv_len", 256)
  block_size = change.get("block_size", (128, 128))
  q = jax.ShapeDtypeStruct((1, q_len, 2, head_dim), dtype)
  k = jax.ShapeDtypeStruct((1, kv_len, change.get("kv_heads", 1), head_dim), dtype)
  indices = jax.ShapeDtypeStruct((1, -(-q_len // block_size[0]), change.get("max_kept", 2)),
                                 change.get("index_dtype", jnp.int32))
  counts = jax.ShapeDtypeStruct(indices.shape[:2], jnp.int32)
  reason = mgpu_attention.supports(q, k, k, indices, counts, block_size=block_size,
                                   config=change.get("config"))
  assert isinstance(reason, str) and reason
  with pytest.raises((ValueError, TypeError), match=message):
    jax.eval_shape(lambda *args: mgpu_attention.kernel_fn(
        *args, block_size=block_size, config=change.get("config")), q, k, k, indices, counts)


def test_supports_accepts_the_benchmark_shapes():
  for head_dim in mgpu_attention.HEAD_DIMS:
    q = jax.ShapeDtypeStruct((4, 8192, 16, head_dim), jnp.bfloat16)
    indices = jax.ShapeDtypeStruct((16, 64, 64), jnp.int32)
    counts = jax.ShapeDtypeStruct((16, 64), jnp.int32)
    assert mgpu_attention.supports(q, q, q, indices, counts, block_size=(128, 128)) is True
