"""Mosaic GPU BSR SpMM kernel vs a float64 product of the same block-sparse matrix.

Runs in Mosaic GPU interpret mode on the CPU (one simulated warpgroup per program, or three with
``compute_warpgroups=2``; TMA copies and barriers included) and compiled when JAX sees a GPU.
Interpret mode runs each wgmma at once (jax 0.11.2), so the asynchronous overlap (a slot
refilled only after ``wgmma_wait(1)``) is checked only by the compiled GPU cases; the wgmma
operand descriptors, swizzles and tilings of the compiled path are built at lowering time, which
``test_lowers_to_mosaic_gpu_without_a_gpu`` runs on any machine for every block shape the kernel
accepts. Outputs start as NaN in the interpreter, so a finite result equal to the reference
shows that every element was written; the interpreter also fails a run in which a thread
waiting on a barrier misses one of its phases (the two-warpgroup program's slot releases).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels import bsr_spmm_mgpu as mgpu_bsr
from tests.pallas_kernels import structured_cases as cases

ON_GPU = jax.default_backend() == "gpu"
INTERPRET = not ON_GPU
Config = mgpu_bsr.MgpuBsrSpmmConfig


@dataclasses.dataclass(frozen=True)
class Case:
  shape: tuple[int, int]  # (M, K) of A
  block_shape: tuple[int, int]
  num_n: int
  dtype: type
  density: float = 0.5  # probability of keeping each block (ignored with ``row_counts``)
  row_counts: tuple[int, ...] | None = None  # stored blocks per block row, else random
  padding: int = 0  # extra blocks past row_offsets[-1]
  config: Config | None = None  # None: default_config


def make_operands(case: Case, rng: np.random.Generator):
  """(data, col_indices, row_offsets, dense, a64, b64): int32 indices, A's blocks in ascending
  columns, values exact in the dtype; a64/b64 the float64 A [M, K] and B [K, N]."""
  bm, bk = case.block_shape
  rows, cols = case.shape[0] // bm, case.shape[1] // bk
  if case.row_counts is None:
    keep = rng.random((rows, cols)) < case.density
  else:
    keep = np.zeros((rows, cols), bool)
    for row, count in enumerate(case.row_counts):
      keep[row, rng.choice(cols, count, replace=False)] = True
  block_rows, block_cols = np.nonzero(keep)  # row-major: ascending columns within a row
  nse = block_rows.size + case.padding
  data64 = cases.random_values(rng, (nse, bm, bk), case.dtype)
  col_indices = np.concatenate([block_cols, rng.integers(0, cols, case.padding)])
  row_offsets = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
  a64 = np.zeros((rows, cols, bm, bk))
  a64[block_rows, block_cols] = data64[:block_rows.size]
  a64 = a64.transpose(0, 2, 1, 3).reshape(case.shape)
  dense, b64 = cases.dense_operand(rng, (case.shape[1], case.num_n), case.dtype)
  return (jnp.asarray(data64, case.dtype), jnp.asarray(col_indices, jnp.int32),
          jnp.asarray(row_offsets, jnp.int32), dense, a64, b64)


def run_case(case: Case, seed: int) -> np.ndarray:
  data, col_indices, row_offsets, dense, a64, b64 = make_operands(
      case, np.random.default_rng(seed))
  reason = mgpu_bsr.supports(data, col_indices, row_offsets, dense, shape=case.shape,
                             config=case.config)
  assert reason is True, reason
  out = mgpu_bsr.kernel_fn(data, col_indices, row_offsets, dense, shape=case.shape,
                           config=case.config, interpret=INTERPRET)
  try:
    cases.check_spmm(out, a64, dense, b64, case.dtype)
  except AssertionError as error:
    raise AssertionError(f"seed {seed}, {case}: {error}") from None
  return np.asarray(out.astype(jnp.float32))


SMALL = Config(tile_n=64, max_concurrent_steps=2)
TWO_WG = Config(tile_n=64, max_concurrent_steps=2, compute_warpgroups=2)
CASES = {
    # Ragged rows: an empty block row (zeros), one block, more blocks than slots (the refill
    # path, every slot reused), all eight; two column tiles; the fewest slots.
    "ragged_rows_bf16_64x64": Case((256, 512), (64, 64), 128, jnp.bfloat16,
                                   row_counts=(0, 1, 5, 8), config=SMALL),
    # Non-square 64x32 blocks (64-byte swizzle), random blocks, padding blocks past
    # row_offsets[-1], three slots.
    "nonsquare_padding_f16_64x32": Case((128, 256), (64, 32), 64, jnp.float16, density=0.5,
                                        padding=3, config=Config(64, 3)),
    # 128-row blocks (two wgmma row groups), the default config.
    "tall_blocks_bf16_128x64": Case((256, 256), (128, 64), 64, jnp.bfloat16,
                                    row_counts=(3, 2)),
    # One block row, every block stored, 128-wide blocks (two 64-element K groups), a 128-wide
    # column tile.
    "one_block_row_f16_64x128": Case((64, 1024), (64, 128), 128, jnp.float16,
                                     row_counts=(8,), config=Config(128, 4)),
    # No stored block in any row but padding blocks in data: the kernel runs and writes zeros.
    "all_rows_empty_bf16": Case((192, 128), (64, 64), 64, jnp.bfloat16, row_counts=(0, 0, 0),
                                padding=2, config=SMALL),
    # Two compute warpgroups and a copy warpgroup: ragged rows with an empty one and more blocks
    # than slots (every slot released by both warpgroups and refilled), two column programs.
    "two_wg_ragged_rows_bf16_64x64": Case((256, 512), (64, 64), 256, jnp.bfloat16,
                                          row_counts=(0, 1, 5, 8), config=TWO_WG),
    # Two warpgroups on 128x32 blocks (64-byte swizzle), padding blocks, three slots.
    "two_wg_padding_f16_128x32": Case((256, 256), (128, 32), 128, jnp.float16, density=0.6,
                                      padding=3, config=Config(64, 3, 2)),
    # Two warpgroups of 128 columns at N = 512, four slots (default_config's two-warpgroup
    # config for 64x64 blocks; its default here is one warpgroup: 4 programs).
    "two_wg_128_wide_bf16_64x64": Case((128, 256), (64, 64), 512, jnp.bfloat16,
                                       row_counts=(4, 1), config=Config(128, 4, 2)),
    # No stored block but padding in data: the copy warpgroup issues nothing, zeros written.
    "two_wg_all_rows_empty_bf16": Case((128, 128), (64, 64), 128, jnp.bfloat16,
                                       row_counts=(0, 0), padding=2, config=TWO_WG),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_matches_float64_reference(name):
  case = CASES[name]
  out = run_case(case, int(np.random.default_rng().integers(2**31)))
  counts = case.row_counts or ()
  bm = case.block_shape[0]
  for row, count in enumerate(counts):
    if count == 0:
      assert (out[row * bm:(row + 1) * bm] == 0).all(), f"empty block row {row} not zero"


@pytest.mark.parametrize("dtype, config", [(jnp.bfloat16, None), (jnp.float16, None),
                                           (jnp.bfloat16, TWO_WG)])
def test_nse_zero_is_zeros_without_a_launch(dtype, config):
  data = jnp.zeros((0, 64, 64), dtype)
  out = mgpu_bsr.kernel_fn(data, jnp.zeros((0,), jnp.int32), jnp.zeros((3,), jnp.int32),
                           jnp.ones((128, 128), dtype), shape=(128, 128), config=config,
                           interpret=INTERPRET)
  assert out.shape == (128, 128) and out.dtype == dtype and not np.asarray(out).any()


def test_int64_indices_are_cast():
  case = Case((128, 128), (64, 64), 64, jnp.bfloat16, row_counts=(1, 2), config=SMALL)
  data, col_indices, row_offsets, dense, a64, b64 = make_operands(case, np.random.default_rng())
  out = mgpu_bsr.kernel_fn(data, col_indices.astype(jnp.int64), row_offsets.astype(jnp.int64),
                           dense, shape=case.shape, config=SMALL, interpret=INTERPRET)
  cases.check_spmm(out, a64, dense, b64, jnp.bfloat16)


GPU_CASES = [
    # The benchmark's shape class: default configs, 64x64 and 128x64 blocks, N 128 and 1024
    # (the first: two warpgroups, 128 programs of 256 columns, ~13 blocks a row).
    Case((2048, 2048), (64, 64), 1024, jnp.bfloat16, density=0.4),
    Case((2048, 2048), (128, 64), 128, jnp.bfloat16, density=0.1),
    Case((1024, 4096), (64, 64), 128, jnp.float16, density=0.5, padding=7),
    # Other swizzles (bk 16, 32, 48: 32- and 64-byte), long rows (bk 128, 256), big blocks,
    # explicit configs, slots 2-4, 256-wide column tiles.
    Case((512, 1024), (64, 16), 256, jnp.bfloat16, density=0.6, config=Config(256, 4)),
    Case((512, 1024), (64, 32), 192, jnp.float16, density=0.4, config=Config(64, 2)),
    Case((512, 960), (64, 48), 128, jnp.bfloat16, density=0.5),
    Case((512, 2048), (128, 128), 256, jnp.bfloat16, density=0.3, config=Config(128, 2)),
    Case((512, 2048), (256, 128), 128, jnp.float16, density=0.5, config=Config(64, 2)),
    Case((1024, 1024), (64, 64), 128, jnp.bfloat16, row_counts=(0,) * 8 + (16,) * 8),
    # One warpgroup at N = 1024 (the default there is two), and two warpgroups: 128-row blocks,
    # 256-row blocks (64-wide halves; 256x128 blocks need 256 KiB of shared memory with two
    # warpgroups even at two slots, more than the 227 KiB), other swizzles, 2-4 slots, ragged
    # rows, the default at N = 256 (8192 rows: 128 programs, ~11 blocks a row).
    Case((2048, 2048), (64, 64), 1024, jnp.bfloat16, density=0.4, config=Config(128, 3)),
    Case((2048, 2048), (128, 64), 1024, jnp.bfloat16, density=0.3, padding=5,
         config=Config(128, 3, 2)),
    Case((512, 1024), (256, 32), 512, jnp.float16, density=0.5, config=Config(64, 3, 2)),
    Case((512, 1024), (64, 16), 512, jnp.bfloat16, density=0.6, config=Config(256, 4, 2)),
    Case((512, 1024), (64, 32), 256, jnp.float16, density=0.4, config=Config(64, 3, 2)),
    Case((1024, 1024), (64, 64), 512, jnp.bfloat16, row_counts=(0,) * 8 + (16,) * 8,
         config=Config(128, 4, 2)),
    Case((8192, 1024), (64, 64), 256, jnp.bfloat16, density=0.7),
]


@pytest.mark.gpu
@pytest.mark.parametrize("index", range(len(GPU_CASES)))
def test_kernel_on_gpu_larger_shapes(index):
  """Compiled (GPU only): default and non-default configs, every swizzle, larger shapes."""
  run_case(GPU_CASES[index], int(np.random.default_rng().integers(2**31)))


def test_gpu_cases_are_supported():
  """Every GPU-only case passes ``supports()`` (shared memory, registers, tiles: checked on any
  machine, so a case the kernel refuses fails here rather than only on the GPU); the defaults
  cover both variants."""
  default_warpgroups = set()
  for index, case in enumerate(GPU_CASES):
    bm, bk = case.block_shape
    blocks = (case.shape[0] // bm) * (case.shape[1] // bk)
    nse = (sum(case.row_counts) if case.row_counts else round(case.density * blocks))
    nse += case.padding
    struct = jax.ShapeDtypeStruct
    operands = (struct((nse, bm, bk), case.dtype), struct((nse,), jnp.int32),
                struct((case.shape[0] // bm + 1,), jnp.int32),
                struct((case.shape[1], case.num_n), case.dtype))
    reason = mgpu_bsr.supports(*operands, shape=case.shape, config=case.config)
    assert reason is True, f"GPU_CASES[{index}] {case}: {reason}"
    if case.config is None:
      default_warpgroups.add(mgpu_bsr.default_config(
          block_shape=case.block_shape, num_rows=case.shape[0], num_n=case.num_n,
          blocks_per_row=mgpu_bsr.blocks_per_row((nse, bm, bk), case.shape)).compute_warpgroups)
    else:
      assert case.config.smem_bytes(case.block_shape, 2) <= mgpu_bsr.SMEM_BYTES
  assert default_warpgroups == {1, 2}


@pytest.mark.parametrize("block_shape, tile_n, slots, dtype, warpgroups", [
    ((64, 64), 128, 3, jnp.bfloat16, 1), ((128, 64), 128, 2, jnp.float16, 1),
    ((64, 16), 64, 4, jnp.bfloat16, 1), ((64, 32), 256, 2, jnp.float16, 1),
    ((64, 48), 64, 3, jnp.bfloat16, 1), ((128, 128), 128, 2, jnp.bfloat16, 1),
    ((256, 128), 64, 2, jnp.float16, 1), ((192, 64), 64, 3, jnp.bfloat16, 1),
    ((64, 64), 128, 4, jnp.bfloat16, 2), ((128, 64), 128, 3, jnp.float16, 2),
    ((64, 32), 256, 2, jnp.bfloat16, 2), ((256, 64), 64, 2, jnp.float16, 2)])
def test_lowers_to_mosaic_gpu_without_a_gpu(block_shape, tile_n, slots, dtype, warpgroups):
  """The compiled path's lowering (jaxpr -> Mosaic GPU MLIR, wgmma descriptors for the tile
  swizzles and tilings included): catches what interpret mode does not run. PTX generation
  happens only on a GPU."""
  bm, bk = block_shape
  shape = (4 * bm, 8 * bk)
  struct = jax.ShapeDtypeStruct
  operands = (struct((20, bm, bk), dtype), struct((20,), jnp.int32), struct((5,), jnp.int32),
              struct((shape[1], 2 * warpgroups * tile_n), dtype))
  config = Config(tile_n, slots, warpgroups)
  assert mgpu_bsr.supports(*operands, shape=shape, config=config) is True
  multiply = jax.jit(lambda *args: mgpu_bsr.kernel_fn(*args, shape=shape, config=config))
  lowered = multiply.trace(*operands).lower(lowering_platforms=("cuda",))
  assert "mosaic_gpu" in lowered.as_text()


def test_default_config_fits_and_fills_the_gpu():
  for bm, bk in ((64, 64), (128, 64), (64, 128), (128, 128), (256, 64), (64, 16)):
    for rows, num_n, blocks_per_row in ((4096, 128, None), (14336, 1024, None),
                                        (14336, 1024, 2.0), (14336, 256, 40.0),
                                        (256, 64, None)):
      config = mgpu_bsr.default_config(block_shape=(bm, bk), num_rows=rows, num_n=num_n,
                                       blocks_per_row=blocks_per_row)
      assert num_n % config.program_n == 0 and bm * config.tile_n <= mgpu_bsr.MAX_ACCUMULATOR
      assert 2 <= config.max_concurrent_steps <= 4
      assert config.smem_bytes((bm, bk), 2) <= mgpu_bsr.SMEM_BYTES
  # N = 128 on 4096 rows of 64-row blocks: 64-wide tiles for 128 programs, not 64.
  assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=4096, num_n=128).tile_n == 64
  # N = 1024 on 4096 rows of 64-row blocks (256 programs of 256 columns), blocks per row
  # unknown or >= 10: two compute warpgroups of 128 columns, one program an SM, four slots.
  for blocks_per_row in (None, 10, 32):
    assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=4096, num_n=1024,
                                   blocks_per_row=blocks_per_row) == Config(
        tile_n=128, max_concurrent_steps=4, compute_warpgroups=2)
  assert mgpu_bsr.default_config(block_shape=(256, 64), num_rows=14336, num_n=1024) == Config(
      tile_n=64, max_concurrent_steps=3, compute_warpgroups=2)
  # Few blocks per row (density 0.05-0.1 of 64 block columns): one warpgroup.
  for blocks_per_row in (3.2, 6.4, 9.9):
    assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=4096, num_n=1024,
                                   blocks_per_row=blocks_per_row) == Config(128, 3)
  # N = 256 with enough programs (14336 rows: 224 of 64-row blocks, 112 of 128-row blocks) and
  # blocks: two warpgroups; with few blocks, one.
  for bm in (64, 128):
    for blocks_per_row, warpgroups in ((None, 2), (12.8, 2), (6.4, 1)):
      assert mgpu_bsr.default_config(
          block_shape=(bm, 64), num_rows=14336, num_n=256,
          blocks_per_row=blocks_per_row).compute_warpgroups == warpgroups
  # Fewer than 100 programs of 256 columns: one warpgroup at any density (4096 rows of 64-row
  # blocks at N = 256: 64 programs; 128-row blocks at N = 256: 32 and N = 1024: 128, which is
  # enough; 256-row blocks at N = 1024: 64).
  for bm, num_n, warpgroups in ((64, 256, 1), (128, 256, 1), (128, 1024, 2), (256, 1024, 1)):
    assert mgpu_bsr.default_config(block_shape=(bm, 64), num_rows=4096, num_n=num_n,
                                   blocks_per_row=32).compute_warpgroups == warpgroups
  # Either variant on request (the benchmark's comparison): the one-warpgroup config N = 1024
  # had before, two warpgroups at N = 256.
  assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=4096, num_n=1024,
                                 compute_warpgroups=1) == Config(128, 3)
  assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=4096, num_n=256,
                                 compute_warpgroups=2) == Config(128, 4, 2)
  # One warpgroup where 256 does not divide N, however large the launch.
  for num_n in (128, 384, 576, 1152):
    assert mgpu_bsr.default_config(block_shape=(64, 64), num_rows=14336,
                                   num_n=num_n).compute_warpgroups == 1
  # supports() and kernel_fn's default count blocks per row from data: nse / (M / bm).
  assert mgpu_bsr.blocks_per_row((640, 64, 64), (4096, 4096)) == 10.0


def test_config_rejects_tiles_that_mosaic_cannot_use():
  with pytest.raises(ValueError, match="tile_n must be a positive multiple of 64 up to 256"):
    Config(tile_n=96)
  with pytest.raises(ValueError, match="tile_n must be a positive multiple of 64 up to 256"):
    Config(tile_n=512)
  with pytest.raises(ValueError, match="max_concurrent_steps must be >= 2"):
    Config(max_concurrent_steps=1)
  with pytest.raises(ValueError, match="compute_warpgroups must be 1 or 2"):
    Config(compute_warpgroups=3)


@pytest.mark.parametrize("change, message", [
    (dict(dtype=jnp.float32), "data must be float16 or bfloat16"),
    (dict(dense_dtype=jnp.float16), "dense must have data's dtype"),
    (dict(block_shape=(32, 64)), r"block_shape\[0\] \(bm\) must be a multiple of 64"),
    (dict(block_shape=(64, 8)), r"block_shape\[1\] = 8 must be a multiple of 16"),
    (dict(block_shape=(64, 40)), r"block_shape\[1\] = 40 must be a multiple of 16"),
    (dict(block_shape=(64, 512)), r"block_shape\[1\] \(bk\) must be at most 256"),
    (dict(num_n=96), "dense's N = 96 must be a multiple of config.tile_n = 64"),
    (dict(num_n=192, config=TWO_WG),
     "dense's N = 192 must be a multiple of config.tile_n = 64 times "
     "config.compute_warpgroups = 2"),
    (dict(block_shape=(128, 64), num_n=256, config=Config(256, 2)),
     r"bm \* config.tile_n = 128 \* 256"),
    (dict(block_shape=(256, 256), config=Config(64, 3)), "bytes of shared memory"),
    (dict(index_dtype=jnp.float32), "col_indices must be int32 or int64"),
    (dict(k=100), r"dense must be \[K, N\] with K = shape\[1\] = 512"),
])
def test_bad_arguments_are_refused_naming_them(change, message):
  bm, bk = change.get("block_shape", (64, 64))
  dtype = change.get("dtype", jnp.bfloat16)
  shape = (4 * bm, 512 if bk <= 64 else 2 * bk)
  struct = jax.ShapeDtypeStruct
  operands = (struct((6, bm, bk), dtype), struct((6,), change.get("index_dtype", jnp.int32)),
              struct((5,), jnp.int32),
              struct((change.get("k", shape[1]), change.get("num_n", 128)),
                     change.get("dense_dtype", dtype)))
  config = change.get("config", SMALL)
  reason = mgpu_bsr.supports(*operands, shape=shape, config=config)
  assert isinstance(reason, str) and reason
  with pytest.raises((ValueError, TypeError), match=message):
    jax.eval_shape(lambda *args: mgpu_bsr.kernel_fn(*args, shape=shape, config=config),
                   *operands)


def test_supports_accepts_the_benchmark_shapes():
  struct = jax.ShapeDtypeStruct
  for rows in (4096, 14336):
    for bm in (64, 128):
      for num_n in (128, 1024):
        operands = (struct((500, bm, 64), jnp.bfloat16), struct((500,), jnp.int32),
                    struct((rows // bm + 1,), jnp.int32), struct((4096, num_n), jnp.bfloat16))
        assert mgpu_bsr.supports(*operands, shape=(rows, 4096)) is True
