"""jsparse._gpu.nvcc's library naming (host-side, run on the CPU): a library's name follows its
source and the local headers the source includes, so editing either rebuilds it."""

import pathlib

import pytest

from jsparse._gpu import nvcc


def test_local_includes_follow_quoted_headers_of_the_folder(tmp_path):
  (tmp_path / "a.h").write_text('#pragma once\n#include "b.h"\n')
  (tmp_path / "b.h").write_text('#include "a.h"\n')  # a cycle ends
  source = tmp_path / "k.cu"
  source.write_text('#include <cstdint>\n  #  include "a.h"\n#include "xla/ffi/api/ffi.h"\n')
  assert nvcc.local_includes(source) == [tmp_path / "a.h", tmp_path / "b.h"]


def test_library_name_changes_with_source_and_headers(tmp_path, monkeypatch):
  monkeypatch.setenv("JSPARSE_CUDA_LIB_DIR", str(tmp_path / "libs"))
  header, source = tmp_path / "checks.h", tmp_path / "k.cu"
  header.write_text("// one")
  source.write_text('#include "checks.h"\n')
  first = nvcc.library_path(source, "jsparse_k")
  assert first.parent == tmp_path / "libs" and first.name.startswith("libjsparse_k-")
  assert nvcc.library_path(source, "jsparse_k") == first
  header.write_text("// two")
  second = nvcc.library_path(source, "jsparse_k")
  assert second != first
  source.write_text('#include "checks.h"\n// edited\n')
  assert nvcc.library_path(source, "jsparse_k") not in (first, second)
  with pytest.raises(FileNotFoundError, match="source checkout"):
    nvcc.library_path(tmp_path / "missing.cu", "jsparse_k")


def test_the_tiled_libraries_cover_their_shared_header():
  # The checkout's sources (an installed jsparse, as CI imports, has no csrc/).
  sources = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "cuda"
  for name in ("sparse_mma_ffi.cu", "tiled_gemv_ffi.cu"):
    assert sources / "tiled_operands.h" in nvcc.local_includes(sources / name)
