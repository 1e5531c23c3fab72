"""jsparse: sparse arrays and sparse kernels for deep-learning inference in JAX."""

from jsparse import io
from jsparse.formats import BSR, COO, CSR, NM, SparseMatrix
from jsparse.ops import sddmm, spmm, spmv

__version__ = "0.1.0"

__all__ = ["BSR", "COO", "CSR", "NM", "SparseMatrix", "io", "sddmm", "spmm", "spmv"]
