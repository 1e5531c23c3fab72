"""Static instruction count of a CUDA kernel's main loop, from its SASS (no GPU needed).

The loop is the smallest span closed by a backward branch that holds every tensor-core
instruction (HMMA) of the function: for the tiled kernel (``TiledMmaKernel``), one K tile a
trip. Counts every instruction in the span once (branches not taken included), those before
its first DEPBAR (the kernel's wait for the step's copies: the instructions that issue the
next step's copies), and the ones named in ``KINDS``.

    nvcc -O2 -std=c++17 -gencode arch=compute_90,code=sm_90 -I$(python -c "import jax;
        print(jax.ffi.include_dir())") -cubin csrc/cuda/sparse_mma_ffi.cu -o k.cubin
    cuobjdump -sass k.cubin > k.sass      # cuobjdump: pip download nvidia-cuda-cuobjdump
    python3 experiments/gpu_checks/sass_loop.py k.sass TiledMmaKernelILb1ELi1ELi1ELb1ELi2E
"""

from __future__ import annotations

import argparse
import collections
import re

KINDS = ("HMMA", "POPC", "LDS", "LDSM", "LDGSTS", "SHFL")
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)(.*?);")


def function_lines(sass: str, name: str) -> list[str]:
  """The SASS lines of the first function whose mangled name contains ``name``."""
  lines, inside = [], False
  for line in sass.splitlines():
    if "Function :" in line:
      if inside:
        break
      inside = name in line
    elif inside:
      lines.append(line)
  if not lines:
    raise ValueError(f"no function whose name contains {name!r}")
  return lines


def loop_body(lines: list[str]) -> list[tuple[int, str]]:
  """(address, opcode) of the instructions in the smallest backward-branch span holding every
  HMMA."""
  code = [(int(m.group(1), 16), m.group(2), m.group(3))
          for m in map(INSTRUCTION.search, lines) if m]
  mma = [address for address, opcode, _ in code if opcode.startswith("HMMA")]
  if not mma:
    raise ValueError("the function has no HMMA")
  spans = []
  for address, opcode, rest in code:
    target = re.search(r"0x([0-9a-f]+)", rest) if opcode.startswith("BRA") else None
    if target and int(target.group(1), 16) <= min(mma) and address >= max(mma):
      spans.append((address - int(target.group(1), 16), int(target.group(1), 16), address))
  if not spans:
    raise ValueError("no backward branch encloses the HMMAs")
  _, first, last = min(spans)
  return [(address, opcode) for address, opcode, _ in code if first <= address <= last]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("sass", help="cuobjdump -sass output")
  parser.add_argument("names", nargs="+", help="parts of mangled kernel names")
  args = parser.parse_args()
  sass = open(args.sass).read()
  for name in args.names:
    body = loop_body(function_lines(sass, name))
    kinds = collections.Counter(k for _, opcode in body for k in KINDS
                                if opcode.split(".")[0] == k)
    wait = next((i for i, (_, opcode) in enumerate(body) if opcode.startswith("DEPBAR")),
                len(body))
    print(f"{name}: {len(body)} instructions in the loop body, {wait} before its first DEPBAR; "
          + ", ".join(f"{k} {kinds[k]}" for k in KINDS))


if __name__ == "__main__":
  main()
