"""The benchmark grid, declared as data: cases (op x format x matrix source x sparsity x N x dtype).

A ``Case`` names one measurement problem; every line of ``experiments/lines.py`` that applies to
it is timed on it. The survey's study ("Sparse Computations in Deep Learning Inference",
arXiv 2512.02550, section on kernel performance) sweeps sparsity 0.5-0.99, the dense dimension
N in {32, 128, 1024} and the formats CSR, COO and N:M; ``FULL`` reproduces that grid, ``QUICK``
is a few-minute subset for a laptop CPU.

Matrix sources (``Case.source``), resolved by ``experiments/problems.py``:
- ``dlmc/<pruning>/<M>x<K>#<i>``: the i-th DLMC matrix of that shape and pruning method at the
  case's sparsity (the collection prunes different layers at each sparsity, so the layer name is
  recorded with each result, not part of the source);
- ``uniform/<M>x<K>``: a uniformly random pattern (``jsparse.datasets.uniform_random``);
- ``llm/<name>``: a magnitude-pruned Gaussian weight of an ``LLM_SHAPES`` entry.
For the structured formats the source gives only the shape: ``bsr`` cases draw random
``BSR_BLOCK`` blocks at the case's block sparsity, ``nm`` cases a random n:m pattern whose sparsity
1 - n/m is the nearest to the case's (see ``nm_ratio``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Iterable, Sequence

OPS = ("spmm", "spmv", "sddmm")
FORMATS = ("csr", "coo", "bsr", "nm")
DTYPES = ("float32", "bfloat16")
SURVEY_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
SURVEY_NS = (32, 128, 1024)
# The sparsities the DLMC collection was pruned to (no 0.99).
DLMC_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
BSR_BLOCK = (16, 16)
# N:M patterns considered for ``nm`` cases, and how far 1 - n/m may be from the case's sparsity.
NM_GROUP_SIZES = (4, 8, 16)
NM_TOLERANCE = 0.03


@dataclasses.dataclass(frozen=True, order=True)
class Case:
  """One benchmark problem.

  Attributes:
    op: "spmm" (A [M, K] @ B [K, N]), "spmv" (A @ x [K], n is 1) or "sddmm" (X [M, n] @ Y [K, n].T
      sampled at A's pattern, n the embedding dimension).
    format: the jsparse format of A: "csr", "coo", "bsr" or "nm".
    source: the matrix source (see the module docstring).
    sparsity: nominal fraction of zeros of A.
    n: the dense dimension (N of SpMM, D of SDDMM; 1 for SpMV).
    dtype: value dtype of A and the dense operands, "float32" or "bfloat16".
  """

  op: str
  format: str
  source: str
  sparsity: float
  n: int
  dtype: str

  @property
  def key(self) -> str:
    """A short unique id, e.g. ``spmm/csr/dlmc/magnitude_pruning/512x512#0/s0.9/n128/float32``."""
    return f"{self.op}/{self.format}/{self.source}/s{self.sparsity:g}/n{self.n}/{self.dtype}"

  def asdict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Grid:
  """A declared grid: the cross product of its axes, minus the combinations that do not exist.

  ``spmv`` ignores ``ns`` (N = 1); DLMC sources have no 0.99 matrices; ``nm`` keeps only the
  sparsities with an n:m pattern within ``NM_TOLERANCE``.
  """

  name: str
  ops: tuple[str, ...]
  formats: tuple[str, ...]
  sources: tuple[str, ...]
  sparsities: tuple[float, ...]
  ns: tuple[int, ...]
  dtypes: tuple[str, ...]

  def cases(self) -> list[Case]:
    cases = set()
    for op, format, source, sparsity, n, dtype in itertools.product(
        self.ops, self.formats, self.sources, self.sparsities, self.ns, self.dtypes):
      if source.startswith("dlmc/") and not any(math.isclose(sparsity, s)
                                                for s in DLMC_SPARSITIES):
        continue
      if format == "nm" and nm_ratio(sparsity) is None:
        continue
      cases.add(Case(op, format, source, sparsity, 1 if op == "spmv" else n, dtype))
    return sorted(cases, key=execution_order)

  def filtered(self, *, ops: Sequence[str] | None = None, formats: Sequence[str] | None = None,
               sources: Sequence[str] | None = None, sparsities: Sequence[float] | None = None,
               ns: Sequence[int] | None = None, dtypes: Sequence[str] | None = None) -> "Grid":
    """This grid with each given axis replaced (the CLI filters); unknown values raise."""
    changes = {}
    for axis, values, allowed in (("ops", ops, OPS), ("formats", formats, FORMATS),
                                  ("dtypes", dtypes, DTYPES)):
      if values:
        unknown = sorted(set(values) - set(allowed))
        if unknown:
          raise ValueError(f"--{axis}: unknown {unknown}, expected some of {list(allowed)}")
        changes[axis] = tuple(values)
    if sources:
      changes["sources"] = tuple(check_source(source) for source in sources)
    if sparsities:
      bad = [s for s in sparsities if not 0 < s < 1]
      if bad:
        raise ValueError(f"--sparsities must lie in (0, 1), got {bad}")
      changes["sparsities"] = tuple(float(s) for s in sparsities)
    if ns:
      changes["ns"] = tuple(int(n) for n in ns)
    return dataclasses.replace(self, **changes)


def execution_order(case: Case) -> tuple:
  """Cases that share a matrix (source, sparsity, format, dtype) run one after another."""
  return (case.source, case.sparsity, FORMATS.index(case.format), DTYPES.index(case.dtype),
          OPS.index(case.op), case.n)


def display_order(case: Case) -> tuple:
  """Tables list cases by op, then matrix, then N, then format and dtype."""
  return (OPS.index(case.op), case.source, case.sparsity, case.n, FORMATS.index(case.format),
          DTYPES.index(case.dtype))


def nm_ratio(sparsity: float) -> tuple[int, int] | None:
  """The n:m (m in ``NM_GROUP_SIZES``) whose sparsity 1 - n/m is nearest, or None if none is
  within ``NM_TOLERANCE``. Ties prefer the smaller m (2:4 over 4:8 over 8:16)."""
  best = None
  for m in NM_GROUP_SIZES:
    for n in range(1, m):
      distance = abs(1 - n / m - sparsity)
      if distance <= NM_TOLERANCE + 1e-12 and (best is None or distance < best[0] - 1e-12):
        best = (distance, n, m)
  return None if best is None else (best[1], best[2])


def check_source(source: str) -> str:
  """Validates a source id's syntax (``dlmc/<pruning>/<M>x<K>#<i>``, ``uniform/<M>x<K>``,
  ``llm/<name>``); returns it."""
  kind, _, rest = source.partition("/")
  ok = {"dlmc": rest.count("/") == 1 and "#" in rest and "x" in rest,
        "uniform": "x" in rest and rest.replace("x", "").isdigit(),
        "llm": bool(rest)}.get(kind, False)
  if not ok:
    raise ValueError(f"source {source!r} is not one of dlmc/<pruning>/<M>x<K>#<i>, "
                     "uniform/<M>x<K>, llm/<name>")
  return source


def parse_shape(text: str) -> tuple[int, int]:
  """``"512x2048"`` -> (512, 2048)."""
  rows, cols = text.split("x")
  return int(rows), int(cols)


def dlmc_sources(prunings: Iterable[str], shapes: Iterable[str], per_shape: int) -> tuple[str, ...]:
  return tuple(f"dlmc/{pruning}/{shape}#{i}" for pruning in prunings for shape in shapes
               for i in range(per_shape))


DLMC_SHAPES = ("512x512", "2048x512", "512x2048")

QUICK = Grid(
    name="quick",
    ops=OPS,
    formats=FORMATS,
    sources=dlmc_sources(["magnitude_pruning"], ["512x512", "2048x512"], 1),
    sparsities=(0.7, 0.9, 0.98),
    ns=(32, 128),
    dtypes=("float32",),
)

FULL = Grid(
    name="full",
    ops=OPS,
    formats=FORMATS,
    sources=dlmc_sources(["magnitude_pruning", "random_pruning"], DLMC_SHAPES, 1)
    + ("uniform/4096x4096",),
    sparsities=SURVEY_SPARSITIES,
    ns=SURVEY_NS,
    dtypes=DTYPES,
)

# Current LLM weight shapes (DLMC's are 2019-2020 Transformer-base): ``--llm`` adds them.
LLM_SOURCES = ("llm/llama3_8b.attn_qo", "llm/llama3_8b.mlp_up")

PRESETS = {"quick": QUICK, "full": FULL}
