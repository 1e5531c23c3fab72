"""Sparse matrices to test and benchmark on: DLMC, Matrix Market, generators, LLM weight shapes.

Not imported by ``import jsparse``; ``load_matrix_market`` needs SciPy (imported when called).
"""

from jsparse.datasets.dlmc import DLMCEntry, default_dlmc_root, list_dlmc, load_dlmc
from jsparse.datasets.generators import (block_sparse, magnitude_pruned, nm_random, rmat,
                                         uniform_random)
from jsparse.datasets.llm_shapes import LLM_SHAPES, llm_weight
from jsparse.datasets.matrix_market import load_matrix_market

__all__ = [
    "DLMCEntry", "LLM_SHAPES", "block_sparse", "default_dlmc_root", "list_dlmc", "llm_weight",
    "load_dlmc", "load_matrix_market", "magnitude_pruned", "nm_random", "rmat", "uniform_random",
]
