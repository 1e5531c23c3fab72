"""pallas_kernels.nm_matmul against a float64 NumPy product (interpret mode on the CPU)."""

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jsparse
from pallas_kernels import nm_matmul
from tests.pallas_kernels import structured_cases as cases

SMALL = nm_matmul.NmMatmulConfig(block_m=16, block_k=32, block_n=16)
# Split-K: K = 72 pads to 3 steps of 32, one per split; float32 partial sums added afterwards.
SPLIT = nm_matmul.NmMatmulConfig(block_m=16, block_k=32, block_n=16, num_splits=3)
# The one-column path (no dot) with 2 splits over 2 steps.
ONE_COLUMN = nm_matmul.NmMatmulConfig(block_m=16, block_k=32, block_n=1, num_splits=2)


def _nm_case(rng, shape, n, m, dtype):
  """An N:M matrix of nonzero values (so every kept value is nonzero) and its float64 dense form."""
  matrix = jsparse.NM.fromdense(jnp.asarray(cases.random_values(rng, shape, dtype), dtype), n=n,
                                m=m)
  return matrix, np.asarray(matrix.todense().astype(jnp.float32), np.float64)


def _run(matrix, b, config=SMALL):
  return nm_matmul.kernel_fn(matrix.data, matrix.indices, b, shape=matrix.shape,
                             nm=(matrix.n, matrix.m), config=config, interpret=cases.INTERPRET)


@pytest.mark.parametrize("dtype", cases.VALUE_DTYPES, ids=lambda d: jnp.dtype(d).name)
@settings(max_examples=1, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_four_ragged(dtype, seed):
  # M = 40 and K = 72 are not multiples of the 16 x 32 tiles; N = 20 spans two column tiles;
  # split-K (the decoding configuration's structure).
  rng = np.random.default_rng(seed)
  matrix, dense64 = _nm_case(rng, (40, 72), 2, 4, dtype)
  b, b64 = cases.dense_operand(rng, (72, 20), dtype)
  cases.check_spmm(_run(matrix, b, SPLIT), dense64, b, b64, dtype)


@pytest.mark.parametrize("n,m,config", [
    pytest.param(1, 4, SMALL, marks=pytest.mark.slow),
    pytest.param(3, 8, ONE_COLUMN, marks=pytest.mark.slow),
    pytest.param(5, 16, SMALL, marks=pytest.mark.slow),
    pytest.param(2, 4, ONE_COLUMN, marks=pytest.mark.slow)], ids=["1:4", "3:8-one-column",
                                                                 "5:16", "2:4-one-column"])
def test_other_patterns(n, m, config):
  # One column of X (decoding); the one-column path with 3 columns, one program each.
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (16, 64), n, m, jnp.float32)
  b, b64 = cases.dense_operand(rng, (64, 3 if config.block_n == 1 else 1), jnp.float32)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.float32)


@pytest.mark.parametrize("n,m", [(2, 4), pytest.param(3, 8, marks=pytest.mark.slow)])
def test_packed_indices_and_one_column(n, m):
  # 2:4 packs 8 groups (4 bits each) a word, 3:8 2 groups (9 bits each); K = 200 leaves the
  # last word part-filled and pads to the next 64-column step; split-K over the steps.
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (12, 200), n, m, jnp.bfloat16)
  packed = nm_matmul.pack_indices(matrix.indices, (n, m))
  bits, per_word = nm_matmul.packed_layout((n, m))
  assert packed.dtype == jnp.uint32 and packed.shape == (12, -(-200 // m // per_word))
  positions = np.asarray(matrix.indices)
  expected_first = sum(int(positions[0, g * n + s]) << (g * n * bits + s * bits)
                       for g in range(per_word) for s in range(n))
  assert int(np.asarray(packed)[0, 0]) == expected_first
  b, b64 = cases.dense_operand(rng, (200, 1), jnp.bfloat16)
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=64, block_n=1, num_splits=2)
  out = nm_matmul.kernel_fn(matrix.data, packed, b, shape=matrix.shape, nm=(n, m), config=config,
                            indices_packed=True, interpret=cases.INTERPRET)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  # The same call with unpacked positions (the one-column path's CI case).
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.bfloat16)
  with pytest.raises(ValueError, match="multiple of m"):
    nm_matmul.kernel_fn(matrix.data, packed, b, shape=matrix.shape, nm=(n, m),
                        config=nm_matmul.NmMatmulConfig(block_k=m), indices_packed=True)
  with pytest.raises(ValueError, match="9:16 needs 36 bits"):
    nm_matmul.packed_layout((9, 16))


@pytest.mark.slow
@pytest.mark.parametrize("packed", [False, True], ids=["uint8", "packed"])
def test_contiguous_loads(packed):
  # The single-load expansion on the ragged 2:4 case (dot, split-K) and one column.
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (40, 200), 2, 4, jnp.bfloat16)
  indices = nm_matmul.pack_indices(matrix.indices, (2, 4)) if packed else matrix.indices
  for columns, block_n in ((20, 16), (1, 1)):
    config = nm_matmul.NmMatmulConfig(block_m=16, block_k=64, block_n=block_n, num_splits=2,
                                      contiguous_loads=True)
    b, b64 = cases.dense_operand(rng, (200, columns), jnp.bfloat16)
    out = nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                              config=config, indices_packed=packed, interpret=cases.INTERPRET)
    cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  assert "n=3" in nm_matmul.gpu_supported((3, 8), nm_matmul.NmMatmulConfig(contiguous_loads=True))


def _ragged_two_four(rng, shape=(24, 100)):
  """A ragged 2:4 bfloat16 matrix (rows and K not multiples of the tiles) with an empty row."""
  values = cases.random_values(rng, shape, jnp.bfloat16)
  values[7] = 0
  matrix = jsparse.NM.fromdense(jnp.asarray(values, jnp.bfloat16), n=2, m=4)
  return matrix, np.asarray(matrix.todense().astype(jnp.float32), np.float64)


@pytest.mark.parametrize("packed", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["uint8", "packed"])
def test_gather_column(packed):
  # No expansion: X gathered at each kept value's column. Two columns (one program column
  # each), split-K, an empty row.
  rng = np.random.default_rng()
  matrix, dense64 = _ragged_two_four(rng)
  indices = matrix.packed_indices if packed else matrix.indices
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=64, block_n=1, num_splits=2,
                                    gather_column=True)
  b, b64 = cases.dense_operand(rng, (100, 2), jnp.bfloat16)
  out = nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                            config=config, indices_packed=packed, interpret=cases.INTERPRET)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  assert "n=3" in nm_matmul.gpu_supported((3, 8), nm_matmul.NmMatmulConfig(gather_column=True))
  with pytest.raises(ValueError, match="gather_column and config.position_dots exclude"):
    nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                        config=dataclasses.replace(config, position_dots=True),
                        indices_packed=packed)


@pytest.mark.parametrize("packed,prefetch", [
    (True, True), pytest.param(False, False, marks=pytest.mark.slow)],
    ids=["packed", "uint8"])
def test_gather_columns(packed, prefetch):
  # The gather with several columns a program (decoding, N = 8 / 16): N = 5 pads to two
  # 4-column tiles; an empty row; K = 100 in 4 steps over 3 splits of 2 steps (the last split
  # empty: with prefetch it loads a valid step and runs none).
  rng = np.random.default_rng()
  matrix, dense64 = _ragged_two_four(rng)
  indices = matrix.packed_indices if packed else matrix.indices
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=32, block_n=4, num_splits=3,
                                    gather_column=True, prefetch=prefetch)
  b, b64 = cases.dense_operand(rng, (100, 5), jnp.bfloat16)
  out = nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                            config=config, indices_packed=packed, interpret=cases.INTERPRET)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  assert "block_n=12" in nm_matmul.gpu_supported(
      (2, 4), dataclasses.replace(config, block_n=12))


@pytest.mark.parametrize("n,m,packed,prefetch,joined", [
    (2, 4, True, True, False), pytest.param(2, 4, False, False, False, marks=pytest.mark.slow),
    pytest.param(3, 8, True, False, False, marks=pytest.mark.slow), (3, 8, False, True, True)],
    ids=["2:4-packed", "2:4-uint8", "3:8-packed", "3:8-uint8-joined"])
def test_position_dots(n, m, packed, prefetch, joined):
  # Prefill's expansion as m per-position dots: ragged rows and K (K = 200 pads to 4 steps of
  # 64 for 2:4, over 3 splits of 2 steps, the last empty; 2 steps of 128 for 3:8, whose 9-bit
  # groups pack 2 a word), N = 20 over two column tiles.
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (40, 200 if m == 4 else 256), n, m, jnp.bfloat16)
  indices = matrix.packed_indices if packed else matrix.indices
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=16 * m, block_n=16, num_splits=3,
                                    position_dots=True, prefetch=prefetch, joined_tile=joined)
  b, b64 = cases.dense_operand(rng, (matrix.shape[1], 20), jnp.bfloat16)
  out = nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(n, m),
                            config=config, indices_packed=packed, interpret=cases.INTERPRET)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  assert nm_matmul.gpu_supported((n, m), config) is True
  assert "block_k_over_m=8" in nm_matmul.gpu_supported(
      (n, m), dataclasses.replace(config, block_k=8 * m))
  assert nm_matmul.packed_fits((n, m), config) and not nm_matmul.packed_fits((9, 16), config)
  with pytest.raises(ValueError, match="prefetch needs config.gather_column or config.position"):
    nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(n, m),
                        config=dataclasses.replace(config, position_dots=False, prefetch=True),
                        indices_packed=packed)


@pytest.mark.parametrize("dtype,joined,packed,block_n", [
    (jnp.bfloat16, True, True, 16), (jnp.bfloat16, True, False, 16),
    (jnp.bfloat16, True, True, 32), pytest.param(jnp.bfloat16, True, True, 64,
                                                 marks=pytest.mark.slow),
    pytest.param(jnp.float16, False, True, 16, marks=pytest.mark.slow),
    pytest.param(jnp.float16, True, False, 16, marks=pytest.mark.slow)],
    ids=["bfloat16-joined", "bfloat16-joined-byte-positions", "bfloat16-joined-32-columns",
         "bfloat16-joined-64-columns", "float16", "float16-joined-byte-positions"])
def test_position_dots_paired_values(dtype, joined, packed, block_n):
  # A group's two 16-bit values read as one uint32 word and split in registers; ragged rows and
  # K (K = 200: 4 steps of 64 over 3 splits, the last empty), an empty row, N = 20 over two
  # column tiles; the per-position tiles joined into one dense tile and one dot, or m dots.
  rng = np.random.default_rng()
  values = cases.random_values(rng, (40, 200), dtype)
  values[5] = 0
  matrix = jsparse.NM.fromdense(jnp.asarray(values, dtype), n=2, m=4)
  dense64 = np.asarray(matrix.todense().astype(jnp.float32), np.float64)
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=64, block_n=block_n, num_splits=3,
                                    position_dots=True, prefetch=True, paired_values=True,
                                    joined_tile=joined)
  b, b64 = cases.dense_operand(rng, (200, 20), dtype)
  # Byte positions (not packed): a group's two read as one uint16, like the values.
  indices = matrix.packed_indices if packed else matrix.indices
  out = nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                            config=config, indices_packed=packed, interpret=cases.INTERPRET)
  cases.check_spmm(out, dense64, b, b64, dtype)
  assert nm_matmul.gpu_supported((2, 4), config) is True
  assert "n=3" in nm_matmul.gpu_supported((3, 8), config)
  assert "joined_tile needs position_dots" in nm_matmul.gpu_supported(
      (2, 4), nm_matmul.NmMatmulConfig(joined_tile=True))
  with pytest.raises(ValueError, match="config.joined_tile needs config.position_dots"):
    nm_matmul.kernel_fn(matrix.data, indices, b, shape=matrix.shape, nm=(2, 4),
                        config=nm_matmul.NmMatmulConfig(joined_tile=True))
  with pytest.raises(ValueError, match="paired_values needs n=2, config.position_dots and 16-bit"):
    nm_matmul.kernel_fn(matrix.data.astype(jnp.float32), matrix.packed_indices,
                        b.astype(jnp.float32), shape=matrix.shape, nm=(2, 4), config=config,
                        indices_packed=True)


@pytest.mark.slow
@pytest.mark.skipif(not cases.INTERPRET, reason="m = 3 needs a tile of 6 columns: interpret only")
def test_non_power_of_two_group_in_interpret_mode():
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (7, 9), 1, 3, jnp.float32)
  b, b64 = cases.dense_operand(rng, (9, 2), jnp.float32)
  config = nm_matmul.NmMatmulConfig(block_m=16, block_k=6, block_n=16)
  cases.check_spmm(_run(matrix, b, config), dense64, b, b64, jnp.float32)
  assert "m=3" in nm_matmul.gpu_supported((1, 3), config)


def test_reference_fn_and_config_checks():
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (8, 16), 2, 4, jnp.float32)
  b, b64 = cases.dense_operand(rng, (16, 3), jnp.float32)
  out = nm_matmul.reference_fn(matrix.data, matrix.indices, b, shape=matrix.shape, nm=(2, 4))
  cases.check_spmm(out, dense64, b, b64, jnp.float32)
  with pytest.raises(ValueError, match="block_k=30 must be a multiple of m=4"):
    _run(matrix, b, nm_matmul.NmMatmulConfig(block_k=30))
  assert "block_n=8" in nm_matmul.gpu_supported((2, 4), nm_matmul.NmMatmulConfig(block_n=8))
  assert nm_matmul.gpu_supported((2, 4), ONE_COLUMN) is True
  with pytest.raises(ValueError, match="num_splits=0 must be >= 1"):
    _run(matrix, b, nm_matmul.NmMatmulConfig(num_splits=0))


@pytest.mark.parametrize("config", [
    nm_matmul.NmMatmulConfig(block_m=64, block_k=128, block_n=1, num_splits=8),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=128, block_n=16, num_splits=8),
    nm_matmul.NmMatmulConfig(block_m=128, block_k=64, block_n=128, num_warps=8),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=128, block_n=1, num_splits=8,
                             contiguous_loads=True),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=128, block_n=16, contiguous_loads=True),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=256, block_n=1, num_splits=4,
                             gather_column=True),
    nm_matmul.NmMatmulConfig(block_m=16, block_k=64, block_n=16, num_splits=4,
                             gather_column=True, prefetch=True),
    nm_matmul.NmMatmulConfig(block_m=128, block_k=64, block_n=128, position_dots=True,
                             prefetch=True, num_warps=8),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=64, block_n=16, num_splits=4,
                             position_dots=True),
    nm_matmul.NmMatmulConfig(block_m=32, block_k=128, block_n=16, num_splits=4,
                             position_dots=True, prefetch=True, paired_values=True,
                             joined_tile=True),
    nm_matmul.NmMatmulConfig(block_m=64, block_k=64, block_n=256, position_dots=True,
                             prefetch=True, paired_values=True),
], ids=["one-column-split", "dot-split", "prefill", "one-column-contiguous", "dot-contiguous",
        "gather-column", "gather-columns", "position-dots", "position-dots-decode",
        "joined-tile-decode", "paired-prefill"])
@pytest.mark.parametrize("packed", [False, True], ids=["uint8", "packed"])
def test_lowers_to_triton_for_h100(monkeypatch, config, packed):
  struct = jax.ShapeDtypeStruct
  indices = struct((256, 32), jnp.uint32) if packed else struct((256, 512), jnp.uint8)
  cases.assert_lowers_to_triton_for_h100(
      monkeypatch, lambda data, indices, dense: nm_matmul.kernel_fn(
          data, indices, dense, shape=(256, 1024), nm=(2, 4), config=config,
          indices_packed=packed),
      struct((256, 512), jnp.bfloat16), indices, struct((1024, 8), jnp.bfloat16))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "nm"),
                    reason="no pallas N:M kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_and_spmv_through_the_kernel(monkeypatch):
  # jsparse._gpu's launches (gathered decoding for N = 8 and 1) read the matrix's packed
  # positions: no packing pass in the call.
  calls = []
  kernel_fn = nm_matmul.kernel_fn
  def recording(data, indices, dense, **kwargs):
    calls.append((indices.dtype, kwargs["indices_packed"], kwargs["config"].gather_column))
    return kernel_fn(data, indices, dense, **kwargs)
  monkeypatch.setattr(nm_matmul, "kernel_fn", recording)
  jax.clear_caches()  # a call of these shapes compiled before would not lower again
  rng = np.random.default_rng()
  matrix, dense64 = _nm_case(rng, (40, 136), 2, 4, jnp.bfloat16)
  b, b64 = cases.dense_operand(rng, (136, 8), jnp.bfloat16)
  cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, jnp.bfloat16)
  cases.check_spmm(jsparse.spmv(matrix, b[:, 0], impl="pallas")[:, None], dense64, b[:, :1],
                   b64[:, :1], jnp.bfloat16)
  # N = 8: per-position dots; N = 1 (spmv): the gather; both on the packed positions.
  assert calls == [(jnp.dtype(jnp.uint32), True, False), (jnp.dtype(jnp.uint32), True, True)]


@pytest.mark.parametrize("num_n", [1, 8, 16, 24, 64, 128, 1024])
def test_auto_on_cuda_picks_the_packed_launches(num_n):
  # What impl="auto" lowers to on a GPU (the registry's choice, no GPU needed): the pallas
  # kernel, with the gather (N = 1) or per-position dots (other N) on packed positions.
  from jsparse._gpu import structured
  from jsparse.formats.layout import SparseLayout
  from jsparse.ops import registry
  layout = SparseLayout("nm", (4096, 14336), nm=(2, 4))
  struct = jax.ShapeDtypeStruct
  avals = [struct((4096, 7168), jnp.bfloat16), struct((4096, 7168), jnp.uint8),
           struct((4096, 448), jnp.uint32), struct((14336, num_n), jnp.bfloat16)]
  params = {"layout": layout, "transpose": False, "impl": "auto"}
  kernel = registry.select_kernel("spmm", "nm", "cuda", "auto", avals, params)
  assert kernel is not None and kernel.impl == "pallas"
  config = structured.nm_config(layout, num_n)
  assert nm_matmul.packed_fits((2, 4), config)
  assert config.gather_column == (num_n == 1) and config.position_dots == (num_n > 1)
  # Several columns (up to JOINED_MAX_N): paired values and one joined tile of 16, 32 or 64
  # columns; prefill: paired values (16-bit values only).
  joined = 1 < num_n <= structured.JOINED_MAX_N
  assert config.paired_values == (num_n > 1) and config.joined_tile == joined
  if joined:
    assert config.block_n == {8: 16, 16: 16, 24: 32, 64: 64, 128: 64}[num_n]
  assert structured.nm_expands(layout, num_n, jnp.bfloat16) == (num_n == 1024)
  assert structured.nm_expands(layout, num_n, jnp.float32) == (num_n > 32)
  float32 = structured.nm_config(layout, num_n, jnp.float32)
  assert not float32.paired_values and nm_matmul.gpu_supported((2, 4), float32) is True
  assert nm_matmul.gpu_supported((2, 4), config) is True


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 8), (5, 16)], ids=lambda v: str(v))
@pytest.mark.parametrize("packed", [False, True], ids=["uint8", "packed"])
def test_expand_fn_is_the_dense_matrix(n, m, packed):
  # Every kept value at its position, zeros elsewhere, exactly; 9 rows, K = 6 groups (not a
  # multiple of a packed word's groups); one row all explicit zeros.
  from jsparse.formats import nm as nm_format
  if packed and not nm_format.packable((n, m)):
    pytest.skip(f"{n}:{m} does not pack into words")
  rng = np.random.default_rng()
  values = cases.random_values(rng, (9, 6 * m), jnp.bfloat16)
  values[4] = 0
  matrix = jsparse.NM.fromdense(jnp.asarray(values, jnp.bfloat16), n=n, m=m)
  expanded = nm_matmul.expand_fn(matrix.data, matrix.packed_indices if packed else matrix.indices,
                                 shape=matrix.shape, nm=(n, m), indices_packed=packed)
  assert expanded.shape == matrix.shape and expanded.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(expanded, np.float32),
                                np.asarray(matrix.todense(), np.float32))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "nm"),
                    reason="no pallas N:M kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_prefill_expands_to_dense(monkeypatch):
  # From EXPAND_MIN_N columns up, W is expanded once (from its packed positions) and multiplied
  # by XLA's product; below, the fused kernel.
  calls = cases.record_prefill_calls(monkeypatch, nm_matmul, 48,
                                     lambda kwargs: kwargs["indices_packed"])
  rng = np.random.default_rng()
  # bfloat16 2:4 keeps the fused joined-tile kernel up to JOINED_MAX_N columns.
  from jsparse._gpu import structured
  for dtype, columns in ((jnp.bfloat16, (structured.JOINED_MAX_N + 2, 48, 20)),
                         (jnp.float32, (48, 20))):
    matrix, dense64 = _nm_case(rng, (40, 136), 2, 4, dtype)
    for num_n in columns:
      b, b64 = cases.dense_operand(rng, (136, num_n), dtype)
      cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, dtype)
  assert calls == [("expand_fn", True), ("kernel_fn", True), ("kernel_fn", True),
                   ("expand_fn", True), ("kernel_fn", True)]


def test_expand_fn_rejects_bad_arguments():
  matrix = jsparse.NM.fromdense(jnp.ones((4, 16), jnp.bfloat16), n=2, m=4)
  data, indices, packed = matrix.data, matrix.indices, matrix.packed_indices
  expand = lambda *a, **k: nm_matmul.expand_fn(*a, **{"shape": (4, 16), "nm": (2, 4), **k})  # noqa: E731
  with pytest.raises(ValueError, match=r"shape\[1\] = K = 18 must be a multiple of m = 4"):
    expand(data, indices, shape=(4, 18))
  with pytest.raises(ValueError, match=r"nm must be \(n, m\) with 0 < n <= m"):
    expand(data, indices, nm=(5, 4))
  with pytest.raises(ValueError, match=r"data must be \[M, K / m \* n\] = \(4, 8\)"):
    expand(data[:, :6], indices)
  with pytest.raises(TypeError, match="data must be float16, bfloat16 or float32"):
    expand(data.astype(jnp.int32), indices)
  with pytest.raises(ValueError, match="indices must be integers of data's shape"):
    expand(data, indices.astype(jnp.float32))
  with pytest.raises(ValueError, match=r"packed indices must be uint32 \(4, 1\)"):
    expand(data, indices, indices_packed=True)
  assert expand(data, packed, indices_packed=True).shape == (4, 16)


@pytest.mark.parametrize("num_n,supported", [(64, True), (8, False)])
def test_cuda_support_is_checked_per_path(num_n, supported):
  # 1:3 (m not a power of two): prefill expands W in plain jax.numpy, so the pallas lowering
  # takes it; decoding needs the fused kernel's Triton constraints, so "auto" falls back to the
  # reference lowering and a forced impl="pallas" says why.
  from jsparse.formats.layout import SparseLayout
  from jsparse.ops import registry
  struct = jax.ShapeDtypeStruct
  avals = [struct((64, 32), jnp.bfloat16), struct((64, 32), jnp.uint8),
           struct((64, 0), jnp.uint32), struct((96, num_n), jnp.bfloat16)]
  params = {"layout": SparseLayout("nm", (64, 96), nm=(1, 3)), "transpose": False}
  kernel = registry.select_kernel("spmm", "nm", "cuda", "auto", avals, dict(params, impl="auto"))
  assert (kernel is not None and kernel.impl == "pallas") == supported
  if not supported:
    with pytest.raises(NotImplementedError, match="m=3 must be a power of two"):
      registry.select_kernel("spmm", "nm", "cuda", "pallas", avals, dict(params, impl="pallas"))


@pytest.mark.skipif(not cases.pallas_registered("spmm", "nm"),
                    reason="no pallas N:M kernel here (GPU, or JSPARSE_PALLAS_INTERPRET=1)")
def test_public_spmm_prefill_of_any_pattern(monkeypatch):
  # 1:3 and 3:8 through impl="pallas" at prefill: W expanded in jax.numpy, then XLA's product.
  calls = cases.record_prefill_calls(monkeypatch, nm_matmul, 40)
  rng = np.random.default_rng()
  for n, m, shape in ((1, 3, (20, 45)), (3, 8, (33, 64))):
    matrix, dense64 = _nm_case(rng, shape, n, m, jnp.bfloat16)
    b, b64 = cases.dense_operand(rng, (shape[1], 40), jnp.bfloat16)
    cases.check_spmm(jsparse.spmm(matrix, b, impl="pallas"), dense64, b, b64, jnp.bfloat16)
  assert calls == ["expand_fn", "expand_fn"]
