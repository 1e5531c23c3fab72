"""Building jsparse's CUDA custom-call libraries with nvcc on a GPU machine (never in CI).

Each library is built from one source file under ``csrc/cuda`` (and the headers it includes
from there) into ``$JSPARSE_CUDA_LIB_DIR`` (or ``$JSPARSE_CUSPARSELT_DIR``, its older name, or
``~/.cache/jsparse``), named by a hash of the source and those headers, so an edited source is
rebuilt rather than an old build loaded.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Callable, Sequence

import jax

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "cuda"


def library_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("JSPARSE_CUDA_LIB_DIR")
                      or os.environ.get("JSPARSE_CUSPARSELT_DIR")
                      or pathlib.Path.home() / ".cache" / "jsparse")


def local_includes(source: pathlib.Path) -> list[pathlib.Path]:
  """The headers ``source`` includes with quotes from its own folder, and theirs in turn."""
  found: list[pathlib.Path] = []
  pending = [source]
  while pending:
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', pending.pop().read_text(),
                           re.MULTILINE):
      header = source.parent / name
      if header.exists() and header not in found:
        found.append(header)
        pending.append(header)
  return found


def library_path(source: pathlib.Path, stem: str) -> pathlib.Path:
  """Where the library ``stem`` built from ``source`` lives (its name carries a hash of the
  source and of its local headers, ``local_includes``). Raises FileNotFoundError without the
  source (an installed package: build from a source checkout)."""
  if not source.exists():
    raise FileNotFoundError(f"{source} not found: jsparse's CUDA libraries are built from a "
                            "source checkout")
  digest = hashlib.sha256(source.read_bytes())
  for header in local_includes(source):
    digest.update(header.read_bytes())
  return library_dir() / f"lib{stem}-{digest.hexdigest()[:12]}.so"


def build(source: pathlib.Path, out: pathlib.Path, flags: Sequence[str] = (),
          verbose: bool = False) -> pathlib.Path:
  """Compiles ``source`` into the shared library ``out`` for sm_90 with the XLA FFI headers
  (and ``flags``: include dirs, libraries); returns ``out``. Raises RuntimeError with the
  compiler's output on failure."""
  nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
  out.parent.mkdir(parents=True, exist_ok=True)
  command = [nvcc, "-O2", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
             "-gencode", "arch=compute_90,code=sm_90", f"-I{jax.ffi.include_dir()}",
             str(source), *flags, "-lcudart", "-o", str(out)]
  result = subprocess.run(command, capture_output=True, text=True)
  if verbose or result.returncode:
    print(" ".join(command), result.stdout, result.stderr, sep="\n", file=sys.stderr)
  if result.returncode:
    raise RuntimeError(f"building {out} failed (nvcc exit {result.returncode}):\n"
                       f"{result.stderr[-3000:]}")
  return out


def load(path: pathlib.Path, build_library: Callable[[], object],
         targets: dict[str, str]) -> ctypes.CDLL:
  """The library at ``path`` (``build_library()`` first when it is missing), its handlers
  registered as CUDA ``jax.ffi`` targets (``targets``: target name -> exported symbol)."""
  if not path.exists():
    build_library()
  library = ctypes.CDLL(str(path))
  for target, symbol in targets.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                platform="CUDA")
  return library


def availability(load_library: Callable[[], object]) -> bool | str:
  """True when a CUDA device is visible and ``load_library()`` succeeds (building the library
  if needed), else why not."""
  if not any(device.platform == "gpu" for device in jax.devices()):
    return "no CUDA device visible to JAX"
  try:
    load_library()
  except Exception as error:  # noqa: BLE001 - the reason is the answer
    return f"{type(error).__name__}: {str(error)[:500]}"
  return True
