"""``jsparse.datasets`` as a package: loaded on request only, without SciPy."""

import os
import subprocess
import sys

import jsparse.datasets


def test_public_names():
  assert sorted(jsparse.datasets.__all__) == [
      "DLMCEntry", "LLM_SHAPES", "block_sparse", "default_dlmc_root", "list_dlmc", "llm_weight",
      "load_dlmc", "load_matrix_market", "magnitude_pruned", "nm_random", "rmat",
      "uniform_random"]


def test_imports_are_lazy():
  check = ("import sys, jsparse; assert 'jsparse.datasets' not in sys.modules; "
           "import jsparse.datasets; assert 'scipy' not in sys.modules, 'scipy was imported'")
  subprocess.run([sys.executable, "-c", check], check=True, env={**os.environ, "PYTHONPATH": ":".join(sys.path)})
