"""Random sparse matrices for the tests: NumPy generators and hypothesis strategies.

Every generator takes a ``np.random.Generator`` so a test draws fresh data per case (hypothesis
draws the seed). Nonzero values have magnitude in [0.5, 1.5] and a random sign: they survive the
cast to any value dtype (no accidental zeros in float16 / bfloat16) and keep products well scaled.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import settings, strategies as st

import jsparse

FORMATS = ("coo", "csr", "bsr", "nm")
VALUE_DTYPES = tuple(np.dtype(d) for d in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64))
DENSITIES = (0.0, 0.1, 0.5, 1.0)
BLOCK_SHAPES = ((1, 1), (2, 3), (3, 2), (4, 4), (2, 1))
NM_PATTERNS = ((2, 4), (1, 4), (4, 8), (1, 2), (2, 8), (3, 16))

# Hypothesis draws new shapes, and every new shape costs XLA compilations (~0.1 s each on CPU):
# one compilation of a whole jitted function is cheaper than one per eager op. Module-level, so
# the cache is shared by every test.
jit_todense = jax.jit(lambda matrix: matrix.todense())


def fewer_examples(fraction: float) -> settings:
  """Hypothesis settings for a compile-heavy test: ``fraction`` of the active profile's examples.

  Keeps the test's share of the run when a profile (see ``tests/conftest.py``) asks for more.
  """
  return settings(max_examples=max(1, round(settings().max_examples * fraction)))


def random_dense(rng: np.random.Generator, shape: Sequence[int], density: float,
                 dtype: Any = np.float64, *, empty_rows: int = 0,
                 ragged: bool = False) -> np.ndarray:
  """A dense [M, K] matrix whose entries are nonzero with probability ``density``.

  Args:
    rng: source of the pattern and values.
    shape: (M, K); zero sizes allowed.
    density: probability in [0, 1] that an entry is nonzero.
    dtype: value dtype of the result (NumPy or JAX dtype, bfloat16 included).
    empty_rows: number of rows, chosen at random, that are forced to hold no nonzero.
    ragged: draw each row's density uniformly from [0, min(1, 2 * density)] instead, so row
      lengths vary widely (as in pruned weights).

  Returns:
    np.ndarray [M, K] of ``dtype``; nonzeros have magnitude in [0.5, 1.5] and a random sign.
  """
  num_rows, num_cols = shape
  row_density = (rng.uniform(0.0, min(1.0, 2.0 * density), size=(num_rows, 1)) if ragged
                 else density)
  mask = rng.random((num_rows, num_cols)) < row_density
  mask[rng.choice(num_rows, size=min(empty_rows, num_rows), replace=False)] = False
  return np.where(mask, _signed_values(rng, (num_rows, num_cols)), 0.0).astype(jnp.dtype(dtype))


def random_nm_dense(rng: np.random.Generator, shape: Sequence[int], n: int, m: int,
                    dtype: Any = np.float64, *, density: float = 1.0) -> np.ndarray:
  """A dense [M, K] matrix with at most n nonzeros in every group of m columns (K % m == 0).

  Each group gets n distinct positions drawn uniformly; each is nonzero with probability
  ``density`` (1.0: exactly n nonzeros per group). Values as in ``random_dense``.
  """
  num_rows, num_cols = shape
  groups = num_cols // m
  # The n smallest of m random keys give n distinct uniformly chosen positions per group.
  positions = np.argsort(rng.random((num_rows, groups, m)), axis=-1)[..., :n]
  mask = np.zeros((num_rows, groups, m), dtype=bool)
  np.put_along_axis(mask, positions, rng.random(positions.shape) < density, axis=-1)
  values = _signed_values(rng, (num_rows, num_cols))
  return np.where(mask.reshape(num_rows, num_cols), values, 0.0).astype(jnp.dtype(dtype))


def make_sparse(fmt: str, dense: Any, *, pad: int = 0, block_shape: Sequence[int] = (2, 2),
                nm: Sequence[int] = (2, 4), index_dtype: Any = np.int32) -> jsparse.SparseMatrix:
  """The matrix of format ``fmt`` that ``fromdense`` should give, built in NumPy (no JAX ops).

  Independent of jsparse's conversions, and fast: no XLA compilation per shape. Entries are in
  row-major order, padding follows the convention of ``jsparse/formats/_structure.py``, and NM
  keeps the n largest magnitudes of each group (see ``nm_reference``). The constructor validates
  the arrays.

  Args:
    fmt: "coo", "csr", "bsr" or "nm".
    dense: [M, K] NumPy array of a value dtype (kept: the matrix has the dtype of ``dense``).
    pad: stored entries (blocks, for BSR) beyond those needed, at the end; NM has no padding.
    block_shape: (bm, bk) for BSR. nm: (n, m) for NM.
    index_dtype: index dtype for COO, CSR and BSR (NM indices are uint8).
  """
  dense = np.asarray(dense)
  num_rows, num_cols = dense.shape
  if fmt == "nm":
    if pad:
      raise ValueError("NM matrices have no padding")
    data, indices = nm_reference(dense, *nm)
    return jsparse.NM((data, indices), shape=dense.shape, n=nm[0], m=nm[1])
  if fmt == "bsr":
    bm, bk = block_shape
    blocks = dense.reshape(num_rows // bm, bm, num_cols // bk, bk).transpose(0, 2, 1, 3)
    rows, cols = np.nonzero(blocks.any(axis=(2, 3)))
    data = _pad(blocks[rows, cols], pad)
    return jsparse.BSR((data, _pad(cols, pad).astype(index_dtype),
                        _row_offsets(rows, num_rows // bm, index_dtype)), shape=dense.shape)
  rows, cols = np.nonzero(dense)
  data = _pad(dense[rows, cols], pad)
  if fmt == "coo":
    rows = _pad(rows, pad, fill=num_rows).astype(index_dtype)
    return jsparse.COO((data, rows, _pad(cols, pad, fill=num_cols).astype(index_dtype)),
                       shape=dense.shape)
  if fmt == "csr":
    return jsparse.CSR((data, _pad(cols, pad).astype(index_dtype),
                        _row_offsets(rows, num_rows, index_dtype)), shape=dense.shape)
  raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")


def fromdense(fmt: str, x: Any, *, nse: int | None = None, block_shape: Sequence[int] = (2, 2),
              nm: Sequence[int] = (2, 4), index_dtype: Any = None) -> jsparse.SparseMatrix:
  """jsparse's own ``fromdense`` of format ``fmt``, with the keywords that format takes.

  Jit-able when ``nse`` is given (NM takes no ``nse``). Arguments as in ``make_sparse``.
  """
  if fmt == "nm":
    return jsparse.NM.fromdense(x, n=nm[0], m=nm[1])
  if fmt == "bsr":
    return jsparse.BSR.fromdense(x, block_shape=block_shape, nse=nse, index_dtype=index_dtype)
  cls = {"coo": jsparse.COO, "csr": jsparse.CSR}[fmt]
  return cls.fromdense(x, nse=nse, index_dtype=index_dtype)


def nm_reference(dense: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
  """The n largest-magnitude values of every group of m columns, ties to the leftmost.

  Returns:
    ``(data [M, K / m * n] of dense's dtype, indices uint8 [M, K / m * n])``, indices increasing
    within each group.
  """
  num_rows, num_cols = dense.shape
  groups = dense.reshape(num_rows, num_cols // m, m)
  magnitude = np.abs(groups.astype(np.float64))
  kept = np.sort(np.argsort(-magnitude, axis=-1, kind="stable")[..., :n], axis=-1)
  data = np.take_along_axis(groups, kept, axis=-1)
  stored = (num_rows, num_cols // m * n)
  return data.reshape(stored), kept.reshape(stored).astype(np.uint8)


def count_nonzero_blocks(dense: Any, block_shape: Sequence[int]) -> int:
  """Number of [bm, bk] blocks of a dense [M, K] matrix that hold a nonzero."""
  bm, bk = block_shape
  nonzero = np.asarray(dense) != 0
  return int(nonzero.reshape(nonzero.shape[0] // bm, bm, -1, bk).any(axis=(1, 3)).sum())


def to_float64(array: Any) -> np.ndarray:
  """A NumPy float64 copy of a JAX or NumPy array of any value dtype (bfloat16 included)."""
  return np.asarray(array).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class SparseCase:
  """A random sparse matrix and the float64 dense matrix that holds exactly its values."""

  matrix: jsparse.SparseMatrix
  dense: np.ndarray  # float64 [M, K], built without the matrix (not from its todense).
  rng: np.random.Generator  # for further random operands of the same case.
  pad: int  # padding entries (blocks for BSR) stored at the end.
  options: dict[str, Any]  # block_shape (BSR) or nm (NM): make_sparse's format keywords.

  @property
  def nse(self) -> int | None:
    """The ``nse`` argument of ``fromdense`` that gives ``matrix`` (None for NM)."""
    return None if self.matrix.format == "nm" else self.matrix.nse


def shapes(*, max_dim: int = 12, min_dim: int = 1,
           multiple_of: Sequence[int] = (1, 1)) -> st.SearchStrategy[tuple[int, int]]:
  """(M, K) with each side in [min_dim, max_dim], rounded up to a multiple of ``multiple_of``."""
  def round_up(size: int, step: int) -> int:
    return step * -(-size // step)
  side = st.integers(min_dim, max_dim)
  return st.tuples(side, side).map(
      lambda s: (round_up(s[0], multiple_of[0]), round_up(s[1], multiple_of[1])))


@st.composite
def sparse_cases(draw, formats: Sequence[str] = FORMATS, dtypes: Sequence[Any] = VALUE_DTYPES,
                 max_dim: int = 12, pads: Sequence[int] = (0, 0, 3)) -> SparseCase:
  """A random matrix of a drawn format, dtype, shape (1x1 and M != K included) and density.

  Patterns include empty rows, all-zero matrices and ragged rows. BSR draws a block shape from
  BLOCK_SHAPES and NM an (n, m) from NM_PATTERNS; the shape is rounded up to fit. COO, CSR and
  BSR draw a number of padding entries from ``pads``.
  """
  fmt = draw(st.sampled_from(formats))
  dtype = draw(st.sampled_from(dtypes))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  kwargs: dict[str, Any] = {}
  multiple_of = (1, 1)
  if fmt == "bsr":
    multiple_of = kwargs["block_shape"] = draw(st.sampled_from(BLOCK_SHAPES))
  if fmt == "nm":
    kwargs["nm"] = draw(st.sampled_from(NM_PATTERNS))
    multiple_of = (1, kwargs["nm"][1])
  shape = draw(shapes(max_dim=max_dim, multiple_of=multiple_of))
  density = draw(st.sampled_from(DENSITIES))
  if fmt == "nm":
    dense = random_nm_dense(rng, shape, *kwargs["nm"], dtype, density=density)
  else:
    dense = random_dense(rng, shape, density, dtype, empty_rows=draw(st.integers(0, 2)),
                         ragged=draw(st.booleans()))
  pad = 0 if fmt == "nm" else draw(st.sampled_from(pads))
  return SparseCase(make_sparse(fmt, dense, pad=pad, **kwargs), to_float64(dense), rng, pad,
                    kwargs)


def assert_same_matrix(actual: jsparse.SparseMatrix, expected: jsparse.SparseMatrix) -> None:
  """Same type, static structure, dtypes and array values (padding included)."""
  assert type(actual) is type(expected)
  actual_leaves, actual_aux = jax.tree_util.tree_flatten(actual)
  expected_leaves, expected_aux = jax.tree_util.tree_flatten(expected)
  assert actual_aux == expected_aux
  for got, want in zip(actual_leaves, expected_leaves):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _signed_values(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
  return rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def _pad(array: np.ndarray, count: int, fill: int = 0) -> np.ndarray:
  """``array`` [n, ...] followed by ``count`` entries equal to ``fill``."""
  padding = np.full((count, *array.shape[1:]), fill, dtype=array.dtype)
  return np.concatenate([array, padding])


def _row_offsets(sorted_rows: np.ndarray, num_rows: int, index_dtype: Any) -> np.ndarray:
  """Row offsets [num_rows + 1] of the row indices of entries sorted by row."""
  counts = np.bincount(sorted_rows, minlength=num_rows)
  return np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
