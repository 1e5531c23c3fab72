"""Builds and runs csrc/tests/kernels_test.cc, the C++ test of the loop nests, under
AddressSanitizer + UBSan (minutes of compilation: marked slow)."""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cpp_kernel_checks_pass_under_sanitizers(tmp_path):
  compiler = shutil.which("g++") or shutil.which("clang++")
  if compiler is None:
    pytest.skip("no C++ compiler")
  binary = tmp_path / "kernels_test"
  subprocess.run([compiler, "-std=c++17", "-O1", "-g", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
                  f"-I{ROOT / 'csrc'}", str(ROOT / "csrc" / "tests" / "kernels_test.cc"), "-o",
                  str(binary), "-lpthread"], check=True)
  result = subprocess.run([str(binary)], capture_output=True, text=True)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "all kernel checks passed" in result.stdout
