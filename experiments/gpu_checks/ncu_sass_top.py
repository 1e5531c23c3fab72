"""Where a kernel's warps stall, per SASS instruction, from Nsight Compute's source page.

    ncu --section SourceCounters ... -o REPORT python3 ...
    ncu --import REPORT.ncu-rep --page source --csv --print-source sass > sass.csv
    python3 experiments/gpu_checks/ncu_sass_top.py sass.csv [TOP]

Prints the ``TOP`` instructions (default 40) by warp stall samples (address, samples, share,
SASS), then, for a warp-specialized Mosaic GPU kernel (compute warpgroups between
``USETMAXREG.TRY_ALLOC`` and ``USETMAXREG.DEALLOC``, the memory warpgroup after), the compute
warps' samples by kind: each barrier's wait loop (the ``BRA`` after its ``TRYWAIT``, named by
its shared-memory address), wgmma waits (``WARPGROUP.DEPBAR``) by address, and other
instructions by opcode.
"""

from __future__ import annotations

import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"


def read(path: str) -> list[tuple[str, str, float]]:
  """(address, SASS, stall samples) per instruction."""
  with open(path, errors="replace", newline="") as file:
    rows = list(csv.reader(file))
  header_at = next(i for i, row in enumerate(rows) if SAMPLES in row)
  header = rows[header_at]
  address, source, samples = (header.index(name) for name in ("Address", "Source", SAMPLES))

  def number(text: str) -> float:
    try:
      return float(text.replace(",", ""))
    except ValueError:
      return 0.0
  return [(row[address], row[source], number(row[samples]))
          for row in rows[header_at + 1:] if len(row) > samples]


def kind(instructions: list[tuple[str, str, float]], index: int) -> str:
  """What the instruction at ``index`` waits for or does (see the module docstring)."""
  address, sass, _ = instructions[index]
  if "BRA" in sass:
    for _, earlier, _ in reversed(instructions[max(0, index - 8):index]):
      if "TRYWAIT" in earlier:
        return f"barrier wait [{earlier.split('[')[1].split(']')[0]}] @{address[-5:]}"
  if "WARPGROUP.DEPBAR" in sass:
    return f"wgmma wait @{address[-5:]}"
  words = sass.split()
  return words[1] if words[0].startswith("@") and len(words) > 1 else words[0]


def main() -> None:
  instructions = read(sys.argv[1])
  top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
  total = sum(samples for *_, samples in instructions) or 1.0
  print(f"{total:.0f} stall samples")
  for address, sass, samples in sorted(instructions, key=lambda item: -item[2])[:top]:
    print(f"{samples:10.0f} {100 * samples / total:5.1f}%  {address:>16}  {sass[:100]}")
  names = [sass for _, sass, _ in instructions]
  try:
    start = next(i for i, sass in enumerate(names) if "USETMAXREG.TRY_ALLOC" in sass)
    end = next(i for i, sass in enumerate(names) if "USETMAXREG.DEALLOC" in sass)
  except StopIteration:
    return
  kinds: dict[str, float] = {}
  for index in range(start, end):
    if instructions[index][2]:
      key = kind(instructions, index)
      kinds[key] = kinds.get(key, 0.0) + instructions[index][2]
  compute = sum(kinds.values()) or 1.0
  print(f"\ncompute warpgroups: {compute:.0f} samples ({100 * compute / total:.0f}%)")
  for key, samples in sorted(kinds.items(), key=lambda item: -item[1])[:top]:
    print(f"{samples:10.0f} {100 * samples / compute:5.1f}%  {key}")


if __name__ == "__main__":
  main()
