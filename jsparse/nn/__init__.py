"""Flax NNX layers over jsparse: sparse linear and convolution layers, block-sparse attention,
learned attention masks and transformer blocks. Importing this module imports flax."""

from jsparse.nn.attention import BlockSparseAttention
from jsparse.nn.conv import SparseConv
from jsparse.nn.learned_mask import LearnedBlockMask
from jsparse.nn.linear import SparseLinear, tune_sparse_tensor_cores, use_sparse_tensor_cores
from jsparse.nn.sparse_weight import SparseWeight, SparsityPattern
from jsparse.nn.transformer import SparseTransformerBlock

__all__ = ["BlockSparseAttention", "LearnedBlockMask", "SparseConv", "SparseLinear",
           "SparseTransformerBlock", "SparseWeight", "SparsityPattern",
           "tune_sparse_tensor_cores", "use_sparse_tensor_cores"]
