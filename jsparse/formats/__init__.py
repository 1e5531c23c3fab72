"""Sparse matrix formats: pytrees with validation and conversions."""

from jsparse.formats.base import SparseMatrix
from jsparse.formats.bsr import BSR
from jsparse.formats.compressed_nm import CompressedNM
from jsparse.formats.coo import COO
from jsparse.formats.csr import CSR
from jsparse.formats.layout import SparseLayout
from jsparse.formats.mma_nm import MmaNM
from jsparse.formats.nm import NM
from jsparse.formats.tiled import Tiled

__all__ = ["BSR", "COO", "CompressedNM", "CSR", "MmaNM", "NM", "SparseLayout", "SparseMatrix",
           "Tiled"]
