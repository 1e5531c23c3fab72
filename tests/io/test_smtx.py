"""DLMC ``.smtx`` files (``jsparse/io/smtx.py``): the copies in ``tests/data/dlmc``, malformed
files, save/load round trips, and the full collection when the shared copy is present."""

import gzip
import pathlib
import shutil

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given

import jsparse
from jsparse.io import load_dlmc_index, load_smtx, save_smtx
from tests.helpers import VALUE_DTYPES, fewer_examples, sparse_cases, to_float64

REPO = pathlib.Path(__file__).resolve().parents[2]
TEST_DLMC = REPO / "tests" / "data" / "dlmc"
SHARED_DLMC = REPO.parent / "shared" / "data" / "dlmc"
INDEX = load_dlmc_index(TEST_DLMC)


def index_id(row: dict) -> str:
  return f"{row['sparsity']:.2g}-{row['nrows']}x{row['ncols']}"


def read_pattern(path: pathlib.Path) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
  """An independent plain-Python reading: ((nrows, ncols), row offsets, column indices)."""
  opener = gzip.open if path.suffix == ".gz" else open
  with opener(path, "rt") as file:
    header, offsets, cols = (file.readline() for _ in range(3))
  num_rows, num_cols, _ = (int(token) for token in header.split(","))
  return ((num_rows, num_cols), np.array([int(t) for t in offsets.split()]),
          np.array([int(t) for t in cols.split()]))


def assert_pattern(matrix: jsparse.CSR, row_offsets, col_indices) -> None:
  np.testing.assert_array_equal(matrix.row_offsets, row_offsets)
  np.testing.assert_array_equal(matrix.col_indices, col_indices)


def write(path: pathlib.Path, text: str) -> pathlib.Path:
  if path.suffix == ".gz":
    path.write_bytes(gzip.compress(text.encode()))
  else:
    path.write_text(text)
  return path


# -- the copied DLMC matrices ----------------------------------------------------------------------


def test_index_of_the_test_copies():
  assert [index_id(row) for row in INDEX] == ["0.5-512x512", "0.9-512x512", "0.98-2048x512"]
  for row in INDEX:
    assert row["file"].exists() and row["model"] == "transformer"
    assert isinstance(row["nnz"], int) and isinstance(row["sparsity"], float)
    assert row["nnz"] == pytest.approx(row["nrows"] * row["ncols"] * (1 - row["sparsity"]), abs=1)
  assert {row["file"].suffix for row in INDEX} == {".gz", ".smtx"}  # both kinds are covered


@pytest.mark.parametrize("row", INDEX, ids=index_id)
def test_load_matches_the_index_and_the_file(row):
  matrix = load_smtx(row["file"])
  assert isinstance(matrix, jsparse.CSR)
  assert matrix.shape == (row["nrows"], row["ncols"]) and matrix.nse == row["nnz"]
  assert matrix.dtype == np.float32 and matrix.col_indices.dtype == np.int32
  row_lengths = np.diff(np.asarray(matrix.row_offsets))
  assert row_lengths.mean() == pytest.approx(row["mean_nnz_per_row"], rel=1e-6)
  assert row_lengths.std() == pytest.approx(row["std_nnz_per_row"], rel=1e-6)
  col_counts = np.bincount(np.asarray(matrix.col_indices), minlength=row["ncols"])
  assert col_counts.std() == pytest.approx(row["std_nnz_per_col"], rel=1e-6)
  shape, row_offsets, col_indices = read_pattern(row["file"])
  assert shape == matrix.shape
  assert_pattern(matrix, row_offsets, col_indices)


@pytest.mark.parametrize("row", INDEX, ids=index_id)
def test_product_matches_scipy(row):
  matrix = load_smtx(row["file"], dtype=np.float64, seed=7)
  _, row_offsets, col_indices = read_pattern(row["file"])
  values = np.random.default_rng(7).standard_normal(row["nnz"])
  reference = scipy.sparse.csr_array((values, col_indices, row_offsets), shape=matrix.shape)
  dense_operand = np.random.default_rng(1).standard_normal((matrix.shape[1], 3))
  np.testing.assert_allclose(matrix @ dense_operand, reference @ dense_operand, rtol=1e-12,
                             atol=1e-12)
  np.testing.assert_array_equal(matrix.todense(), reference.toarray())


def test_values_come_from_the_seed():
  path = INDEX[1]["file"]
  nnz = INDEX[1]["nnz"]
  first, again, other = (load_smtx(path, seed=seed, dtype=np.float64) for seed in (3, 3, 4))
  np.testing.assert_array_equal(first.data, again.data)
  np.testing.assert_array_equal(first.data, np.random.default_rng(3).standard_normal(nnz))
  assert not np.any(np.asarray(first.data) == np.asarray(other.data))
  assert_pattern(other, first.row_offsets, first.col_indices)
  uniform = load_smtx(path, seed=3, dtype=np.float64, values="uniform")
  np.testing.assert_array_equal(uniform.data, np.random.default_rng(3).uniform(-1, 1, nnz))
  assert np.all(np.abs(np.asarray(uniform.data)) <= 1)


@pytest.mark.parametrize("dtype", VALUE_DTYPES, ids=str)
def test_value_dtypes(dtype):
  matrix = load_smtx(INDEX[2]["file"], dtype=dtype, seed=5)
  assert matrix.dtype == dtype
  expected = np.random.default_rng(5).standard_normal(INDEX[2]["nnz"]).astype(dtype)
  np.testing.assert_array_equal(to_float64(matrix.data), to_float64(expected))


def test_unknown_value_distribution_raises():
  with pytest.raises(ValueError,
                     match=r"values must be one of \['normal', 'uniform'\], got 'ones'"):
    load_smtx(INDEX[0]["file"], values="ones")


def test_plain_and_gzip_files_read_the_same(tmp_path):
  plain, compressed = INDEX[1]["file"], INDEX[0]["file"]
  assert plain.suffix == ".smtx" and compressed.suffix == ".gz"
  gzipped_copy = tmp_path / "copy.smtx.gz"
  gzipped_copy.write_bytes(gzip.compress(plain.read_bytes()))
  plain_copy = tmp_path / "copy.smtx"
  plain_copy.write_bytes(gzip.decompress(compressed.read_bytes()))
  # Content, not the suffix, tells gzip apart.
  misnamed = shutil.copy(compressed, tmp_path / "misnamed.smtx")
  for original, copy in ((plain, gzipped_copy), (compressed, plain_copy), (compressed, misnamed)):
    expected = load_smtx(original)
    actual = load_smtx(copy)
    assert_pattern(actual, expected.row_offsets, expected.col_indices)
    np.testing.assert_array_equal(actual.data, expected.data)


# -- small and malformed files ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".smtx", ".smtx.gz"])
def test_small_file(tmp_path, suffix):
  path = write(tmp_path / f"small{suffix}", "3, 4, 4\n0 2 2 4\n1 3 0 2\n")
  matrix = load_smtx(path)
  assert matrix.shape == (3, 4)
  assert_pattern(matrix, [0, 2, 2, 4], [1, 3, 0, 2])


@pytest.mark.parametrize("text", ["2, 3, 0\n0 0 0\n", "2, 3, 0\n0 0 0\n\n", "2, 3, 0\n0 0 0\n  \n"])
def test_empty_pattern(tmp_path, text):
  matrix = load_smtx(write(tmp_path / "empty.smtx", text))
  assert matrix.shape == (2, 3) and matrix.nse == 0


@pytest.mark.parametrize("text, match", [
    ("", "the file is empty"),
    ("3, 4\n0 1 1 1\n2\n", r"the header must be three non-negative ints 'nrows, ncols, nnz', "
                           r"got '3, 4'"),
    ("3, -4, 1\n0 1 1 1\n2\n", "the header must be three non-negative ints"),
    ("3, 4, x\n0 1 1 1\n2\n", r"the header must be integers, found 'x'"),
    ("3, 4, 1\n0 1 1 1\n", r"expected 3 lines \(header, row offsets, column indices\), got 2"),
    ("3, 4, 1\n0 1 1 1\n2\n5\n", "expected 3 lines .* got 4"),
    ("3, 4, 1\n0 1 1\n2\n", r"row offsets has 3 entries, expected nrows\+1 = 4"),
    ("3, 4, 2\n0 1 1 2\n2\n",
     r"column indices has 1 entries, expected nnz = 2 \(from the header\)"),
    ("3, 4, 1\n0 1 1 2\n2\n", r"the last row offset is 2, expected nnz = 1"),
    ("3, 4, 1\n0 1 1 1\n1.5\n", r"the column indices must be integers, found '1.5'"),
    ("3, 4, 1\n0 1 1,1\n1\n", r"the row offsets must be integers, found '1,1'"),
    ("3, 4, 1\n0 1 1 1\n4\n", r"col_indices out of range: col_indices\[0\] = 4, "
                              r"expected 0 <= index < 4"),
    ("3, 4, 1\n0 1 1 1\n-1\n", r"col_indices out of range: col_indices\[0\] = -1"),
    # Huge values must not wrap around into range in the cast to int32.
    ("3, 4, 1\n0 1 1 1\n4294967297\n", r"col_indices out of range"),
    ("3, 4, 2\n0 2 1 2\n0 1\n", r"row_offsets must be non-decreasing"),
    ("3, 4, 2\n1 1 1 2\n0 1\n", r"row_offsets\[0\] must be 0"),
    ("3, 4, 2\n0 2 2 2\n3 1\n", r"col_indices must be sorted and unique within each row: unsorted"),
    ("3, 4, 2\n0 2 2 2\n1 1\n", r"col_indices must be sorted and unique within each row: dupl"),
])
@pytest.mark.parametrize("suffix", [".smtx", ".smtx.gz"])
def test_malformed_file_raises_naming_file_and_problem(tmp_path, suffix, text, match):
  path = write(tmp_path / f"bad{suffix}", text)
  with pytest.raises(ValueError, match=match) as error:
    load_smtx(path)
  assert str(error.value).startswith(f"{path}: ")


# -- save ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("row", INDEX, ids=index_id)
def test_save_load_round_trip_of_dlmc_matrices(tmp_path, row):
  matrix = load_smtx(row["file"])
  for name in ("copy.smtx", "copy.smtx.gz"):
    save_smtx(tmp_path / name, matrix)
    loaded = load_smtx(tmp_path / name)
    assert loaded.shape == matrix.shape
    assert_pattern(loaded, matrix.row_offsets, matrix.col_indices)
  assert (tmp_path / "copy.smtx.gz").read_bytes()[:2] == b"\x1f\x8b"
  assert (tmp_path / "copy.smtx").read_bytes() == gzip.decompress(
      (tmp_path / "copy.smtx.gz").read_bytes())


def test_save_writes_the_dlmc_layout(tmp_path):
  path = tmp_path / "small.smtx"
  save_smtx(path, jsparse.CSR.fromdense(np.array([[0.0, 1.0], [0.0, 0.0], [2.0, 3.0]]), nse=5))
  assert path.read_text() == "3, 2, 3\n0 1 1 3\n1 0 1\n"  # padding dropped
  gz_path = tmp_path / "small.smtx.gz"
  save_smtx(gz_path, load_smtx(path))
  first = gz_path.read_bytes()
  save_smtx(gz_path, load_smtx(path))
  assert gz_path.read_bytes() == first  # reproducible bytes


@fewer_examples(0.4)
@given(case=sparse_cases())
def test_save_load_round_trip_of_any_matrix(tmp_path_factory, case):
  path = tmp_path_factory.mktemp("smtx") / "pattern.smtx.gz"
  save_smtx(path, case.matrix)
  loaded = load_smtx(path)
  csr = case.matrix.tocsr()
  end = int(csr.row_offsets[-1])
  assert loaded.shape == case.matrix.shape and loaded.nse == end
  assert_pattern(loaded, csr.row_offsets, np.asarray(csr.col_indices)[:end])


# -- the shared collection -------------------------------------------------------------------------


@pytest.mark.skipif(not (SHARED_DLMC / "index.csv").exists(),
                    reason=f"the shared DLMC copy is absent ({SHARED_DLMC}/index.csv)")
def test_every_matrix_of_the_shared_collection_loads():
  index = load_dlmc_index(SHARED_DLMC)
  assert index
  for row in index:
    matrix = load_smtx(row["file"])
    assert matrix.shape == (row["nrows"], row["ncols"]) and matrix.nse == row["nnz"], row["name"]
    row_lengths = np.diff(np.asarray(matrix.row_offsets))
    assert row_lengths.std() == pytest.approx(row["std_nnz_per_row"], rel=1e-6), row["name"]
