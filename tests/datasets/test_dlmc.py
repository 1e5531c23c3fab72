"""DLMC listing and loading (``jsparse/datasets/dlmc.py``) over the copies in ``tests/data/dlmc``
and, when present, the project's subset in ``../shared/data/dlmc``."""

import collections
import dataclasses
import pathlib

import numpy as np
import pytest

import jsparse
from jsparse.datasets import DLMCEntry, default_dlmc_root, dlmc, list_dlmc, load_dlmc
from jsparse.io import load_smtx
from tests.helpers import assert_same_matrix

REPO = pathlib.Path(__file__).resolve().parents[2]
TEST_DLMC = REPO / "tests" / "data" / "dlmc"
SHARED_DLMC = REPO.parent / "shared" / "data" / "dlmc"
needs_shared = pytest.mark.skipif(not (SHARED_DLMC / "index.csv").is_file(),
                                  reason=f"the project's DLMC subset is not at {SHARED_DLMC}")


def test_list_dlmc_reads_every_entry_of_the_index():
  entries = list_dlmc(TEST_DLMC)
  assert [(e.sparsity, e.shape, e.nnz) for e in entries] == [
      (0.5, (512, 512), 131072), (0.9, (512, 512), 26214), (0.98, (2048, 512), 20971)]
  for entry in entries:
    assert isinstance(entry, DLMCEntry) and entry.path.is_file()
    assert entry.model == "transformer" and entry.pruning == "magnitude_pruning"
    assert entry.name.startswith("transformer/magnitude_pruning/")
  assert {e.path.suffix for e in entries} == {".gz", ".smtx"}


@pytest.mark.parametrize("filters, sparsities", [
    ({"sparsity": 0.9}, [0.9]),
    ({"sparsity": [0.5, 0.98]}, [0.5, 0.98]),
    ({"sparsity": 0.7}, []),
    ({"shapes": [(2048, 512)]}, [0.98]),
    ({"shapes": [(512, 512), (512, 2048)]}, [0.5, 0.9]),
    ({"pruning": "magnitude_pruning", "model": ["transformer", "rn50"]}, [0.5, 0.9, 0.98]),
    ({"pruning": "random_pruning"}, []),
    ({"model": "rn50"}, []),
    ({"sparsity": 0.5, "shapes": [(2048, 512)]}, []),
], ids=str)
def test_list_dlmc_filters(filters, sparsities):
  assert [e.sparsity for e in list_dlmc(TEST_DLMC, **filters)] == sparsities


@pytest.mark.parametrize("index", [0, 1, 2])
def test_load_dlmc_draws_seeded_values_on_the_pattern(index):
  entry = list_dlmc(TEST_DLMC)[index]
  matrix = load_dlmc(entry, seed=index)
  assert isinstance(matrix, jsparse.CSR) and matrix.shape == entry.shape
  assert matrix.nse == entry.nnz and matrix.dtype == np.float32
  assert_same_matrix(matrix, load_smtx(entry.path, seed=index))
  assert not np.array_equal(load_dlmc(entry, seed=index + 1).data, matrix.data)


def test_load_dlmc_as_coo_in_float64():
  entry = list_dlmc(TEST_DLMC, sparsity=0.98)[0]
  matrix = load_dlmc(entry, dtype=np.float64, format="coo")
  assert isinstance(matrix, jsparse.COO) and matrix.dtype == np.float64 and matrix.nse == 20971


def test_load_dlmc_rejects_an_entry_that_does_not_match_its_file():
  entry = dataclasses.replace(list_dlmc(TEST_DLMC)[1], nnz=5)
  with pytest.raises(ValueError, match="nnz=26214, but the index says .* nnz=5"):
    load_dlmc(entry)


def test_default_root_honors_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("JSPARSE_DLMC_ROOT", str(TEST_DLMC))
  assert default_dlmc_root() == TEST_DLMC
  assert len(list_dlmc()) == 3
  monkeypatch.setenv("JSPARSE_DLMC_ROOT", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="JSPARSE_DLMC_ROOT.*holds no index.csv"):
    default_dlmc_root()


def test_default_root_of_a_checkout(monkeypatch, tmp_path):
  monkeypatch.delenv("JSPARSE_DLMC_ROOT", raising=False)
  expected = SHARED_DLMC if (SHARED_DLMC / "index.csv").is_file() else None
  assert default_dlmc_root() == expected
  monkeypatch.setattr(dlmc, "CHECKOUT_ROOTS", (tmp_path,))
  assert default_dlmc_root() is None
  with pytest.raises(FileNotFoundError, match="no DLMC folder"):
    list_dlmc()


@needs_shared
def test_the_shared_subset():
  entries = list_dlmc(SHARED_DLMC)
  assert len(entries) == 96 and all(e.path.is_file() for e in entries)
  assert collections.Counter(e.pruning for e in entries) == {"magnitude_pruning": 48,
                                                             "random_pruning": 48}
  assert collections.Counter(e.shape for e in entries) == {(512, 512): 48, (2048, 512): 24,
                                                           (512, 2048): 24}
  chosen = list_dlmc(SHARED_DLMC, pruning="random_pruning", sparsity=0.95, shapes=[(512, 2048)])
  assert len(chosen) == 2
  for entry in chosen:
    matrix = load_dlmc(entry, seed=0)
    assert matrix.shape == (512, 2048) and matrix.nse == entry.nnz
    assert matrix.nse == pytest.approx(512 * 2048 * 0.05, rel=1e-3)
