"""The Pallas CSR kernels (``pallas_kernels/csr_*.py``) as ``pallas`` lowerings of spmm, spmv
and sddmm on CSR matrices.

Served: ``A @ B``, ``A @ x`` and SDDMM with float16, bfloat16 or float32 values (float32
accumulation) and int32 indices. SDDMM takes the row kernel (``csr_sddmm``) or, where
``csr_sddmm_dense.prefers_dense`` expects it to be faster (dense patterns, long inner
dimensions), X @ Y.T on the tensor cores sampled at the pattern. SpMM takes the row kernel
(``csr_spmm``) or, where ``csr_spmm_dense.prefers_dense`` expects it to be faster (dense
patterns, wide B), A's rows expanded to dense times B by XLA's dot (``SPMM_PATH_ENV_VAR``
overrides the choice). ``A.T @ B`` / ``A.T @ x`` (what gradients with respect to B need) are
not: ``"auto"`` falls back to the reference lowering and a forced ``impl="pallas"`` says why. The row schedule (rows longest
first, in power-of-two length buckets) is computed inside the traced kernel call without a sort
(one prefix sum and one scatter of M indices), unless the matrix's layout says its rows already
follow it (``natural_row_order``, checked on the host when the CSR matrix is built) or the call
is too small for it to pay (``launches_in_order``): then the kernels launch the rows in order.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax.numpy as jnp

from jsparse._gpu import register_pallas
from pallas_kernels import csr_sddmm, csr_sddmm_dense, csr_spmm, csr_spmm_dense, csr_spmv

KERNEL_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32))


# Which SpMM path runs: "auto" (``csr_spmm_dense.prefers_dense`` picks), "rows" or "dense"
# (read when a call is lowered). The dense path was opt-in until 2026-11-26: through a Pallas
# product it made pruned MiniLM's forward pass slower (transposes around it); through XLA's dot
# it is faster (H100 bf16, 8 x 512 tokens, magnitude 70% / 90%: 4157 / 2300 us with the row
# kernels, 1419 / 1703 with the dense path; experiments/results/h100-2026-11-26-prefill-expand/).
SPMM_PATH_ENV_VAR = "JSPARSE_CSR_SPMM_PATH"
SPMM_PATHS = ("auto", "rows", "dense")


def spmm_path() -> str:
  """``JSPARSE_CSR_SPMM_PATH`` ("auto" when unset or empty), checked."""
  path = os.environ.get(SPMM_PATH_ENV_VAR, "") or "auto"
  if path not in SPMM_PATHS:
    raise ValueError(f"{SPMM_PATH_ENV_VAR} must be one of {SPMM_PATHS}, got {path!r}")
  return path


# What the row path of a layer call (``operand_transposed``: ``spmm(W, x.T).T``) pays beyond
# the op alone: x.T and the result's transpose materialised, two more kernels. Their device time
# is 2.4-2.9 us at MiniLM's shapes, N = 128 (H100; experiments/results/
# h100-2026-11-26-kernel-time/spmm-path/). Inside the forward pass each also costs its launch:
# MiniLM at 1 x 128 tokens, bfloat16, took 329.8 us (90%) / 331.2 (70%) with the row path
# wherever the op alone favoured it (minilm-no-hint/ there), against 271.6 / 303.8 with the
# dense path in those layers (stop 22).
OPERAND_TRANSPOSES_US = 4.0


def takes_dense_path(num_rows: int, num_cols: int, n: int, nse: int, dtype,
                     operand_transposed: bool = False) -> bool:
  """Whether an SpMM of these static shapes runs through dense rows (``spmm_path``);
  ``operand_transposed``: the layout's hint (the row path then also pays
  ``OPERAND_TRANSPOSES_US``)."""
  path = spmm_path()
  if path == "auto":
    return csr_spmm_dense.prefers_dense(
        num_rows, num_cols, n, nse, dtype,
        row_extra_us=OPERAND_TRANSPOSES_US if operand_transposed else 0.0)
  return path == "dense"


# The row schedule (``_rows.rows_by_length``, computed in the call for a matrix whose rows were
# not seen to need none) is four small XLA kernels, 10-15 us a call on an H100. On the DLMC
# subset (512-2048 rows, float32, N or D 32 / 128, s 0.5-0.98; 72 SpMM and SDDMM cases) the row
# kernels were faster in row order every time: 5.6-71.0 us against 17.8-78.3 us with the
# schedule (experiments/results/h100-2026-11-26-dlmc-harness/small-launch/). The schedule is
# computed only where the kernel's modeled time leaves room for it to pay.
SCHEDULE_MIN_KERNEL_US = 100.0
# Modeled rates of the row kernels (SpMV: bytes of values and indices streamed).
SPMV_BYTES_PER_US = 2.0e6


def launches_in_order(layout: Any, op: str, nse: int, width: int, itemsize: int) -> bool:
  """Whether the row kernels launch the rows in order (no schedule): the layout says the rows
  need none (``natural_row_order``), or the kernel's modeled time for ``op`` ("spmm", "spmv",
  "sddmm"; ``width`` = N or D) is under ``SCHEDULE_MIN_KERNEL_US``."""
  if op not in ("spmm", "spmv", "sddmm"):
    raise ValueError(f"op must be 'spmm', 'spmv' or 'sddmm', got {op!r}")
  if layout.natural_row_order:
    return True
  if op == "spmm":
    modeled_us = nse * width / csr_spmm_dense.ROW_KERNEL_PRODUCTS_PER_US
  elif op == "spmv":
    modeled_us = nse * (itemsize + 4) / SPMV_BYTES_PER_US
  else:
    modeled_us = nse * width * itemsize / csr_sddmm_dense.ROW_KERNEL_BYTES_PER_US
  return modeled_us < SCHEDULE_MIN_KERNEL_US


def _spmm(data, col_indices, row_offsets, dense, *, interpret, layout, **unused):
  num_rows, num_cols = layout.shape
  if takes_dense_path(num_rows, num_cols, dense.shape[1], data.shape[0], data.dtype,
                      bool(layout.operand_transposed)):
    return csr_spmm_dense.kernel_fn(data, col_indices, row_offsets, dense, num_rows=num_rows,
                                    interpret=interpret)
  in_order = launches_in_order(layout, "spmm", data.shape[0], dense.shape[1],
                               jnp.dtype(data.dtype).itemsize)
  return csr_spmm.kernel_fn(data, col_indices, row_offsets, dense, num_rows=num_rows,
                            interpret=interpret, natural_order=in_order)


def _spmv(data, col_indices, row_offsets, vector, *, interpret, layout, **unused):
  in_order = launches_in_order(layout, "spmv", data.shape[0], 1, jnp.dtype(data.dtype).itemsize)
  return csr_spmv.kernel_fn(data, col_indices, row_offsets, vector, num_rows=layout.shape[0],
                            interpret=interpret, natural_order=in_order)


def _sddmm(col_indices, row_offsets, x, y, *, interpret, layout, **unused):
  num_rows, num_cols = layout.shape
  if csr_sddmm_dense.prefers_dense(num_rows, num_cols, x.shape[1], col_indices.shape[0],
                                   x.dtype):
    return csr_sddmm_dense.kernel_fn(col_indices, row_offsets, x, y, num_rows=num_rows,
                                     interpret=interpret)
  in_order = launches_in_order(layout, "sddmm", col_indices.shape[0], x.shape[1],
                               jnp.dtype(x.dtype).itemsize)
  return csr_sddmm.kernel_fn(col_indices, row_offsets, x, y, num_rows=layout.shape[0],
                             interpret=interpret, natural_order=in_order)


def _check_arrays(values: Sequence[Any], indices: Sequence[Any]) -> bool | str:
  for aval in values:
    if jnp.dtype(aval.dtype) not in KERNEL_DTYPES:
      return f"value dtype {jnp.dtype(aval.dtype)} not supported (float16, bfloat16, float32)"
  for aval in indices:
    if jnp.dtype(aval.dtype) != jnp.dtype(jnp.int32):
      return f"index dtype {jnp.dtype(aval.dtype)} not supported (int32 only)"
  return True


def _supports_product(avals: Sequence[Any], params: dict) -> bool | str:
  """spmm / spmv: ``data, col_indices, row_offsets, dense``; not transposed."""
  if params.get("transpose", False):
    return "A.T @ B (transpose=True) is not implemented by the Pallas CSR kernels"
  data, col_indices, row_offsets, dense = avals
  return _check_arrays((data, dense), (col_indices, row_offsets))


def _supports_sddmm(avals: Sequence[Any], params: dict) -> bool | str:
  col_indices, row_offsets, x, y = avals
  return _check_arrays((x, y), (col_indices, row_offsets))


register_pallas("spmm", "csr", _spmm, supports=_supports_product)
register_pallas("spmv", "csr", _spmv, supports=_supports_product)
register_pallas("sddmm", "csr", _sddmm, supports=_supports_sddmm)
